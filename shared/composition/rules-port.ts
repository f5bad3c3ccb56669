/**
 * Adapts shared/rules (loader, tag collection, matcher) to what evaluation needs.
 */
import type { OrthancClient } from '../orthanc/client';
import type { RuleVerdict, RulesPort } from '../pipeline/evaluate';
import { createRuleLoader } from '../rules/loader';
import { matchRule } from '../rules/matcher';
import { collectResourceTags, type ResourceTags } from '../rules/resource-tags';
import type { MasterSettings, Rule, RuleSetSnapshot } from '../rules/model';
import { usesBookingFields, withBookingFields } from '../worklist/rule-fields';
import type { BookingStore } from '../worklist/store';

export interface AppRulesPort extends RulesPort<Rule, ResourceTags> {
  /** The whole rule set as loaded now: rules, problems per file, ignored files, master settings. */
  load(): Promise<RuleSetSnapshot>;
  master(): Promise<MasterSettings>;
}

export function createRulesPort(
  rulesPath: string,
  orthanc: OrthancClient,
  bookings?: Pick<BookingStore, 'findByStudy'>,
): AppRulesPort {
  const loader = createRuleLoader(rulesPath);
  return {
    load: () => loader.load(),
    async master() {
      return (await loader.load()).master;
    },
    async collectTags(level, resourceId, rules) {
      const tags = await collectResourceTags(orthanc, level, resourceId, rules);
      // Booking.* fields (issue 19) come from the worklist's records, read only when a rule asks.
      return bookings && usesBookingFields(rules) ? withBookingFields(tags, bookings) : tags;
    },
    match(rule, tags): RuleVerdict {
      const result = matchRule(rule, tags);
      return { matched: result.matched, failures: result.reasons.filter((r) => !r.passed).map((r) => r.explanation) };
    },
  };
}
