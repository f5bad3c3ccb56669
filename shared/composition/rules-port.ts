/**
 * Adapts shared/rules (loader, tag collection, matcher) to what evaluation needs.
 */
import type { OrthancClient } from '../orthanc/client';
import type { RuleVerdict, RulesPort } from '../pipeline/evaluate';
import { createRuleLoader } from '../rules/loader';
import { matchRule } from '../rules/matcher';
import { collectResourceTags, type ResourceTags } from '../rules/resource-tags';
import type { MasterSettings, Rule, RuleSetSnapshot } from '../rules/model';

export interface AppRulesPort extends RulesPort<Rule, ResourceTags> {
  /** The whole rule set as loaded now: rules, problems per file, ignored files, master settings. */
  load(): Promise<RuleSetSnapshot>;
  master(): Promise<MasterSettings>;
}

export function createRulesPort(rulesPath: string, orthanc: OrthancClient): AppRulesPort {
  const loader = createRuleLoader(rulesPath);
  return {
    load: () => loader.load(),
    async master() {
      return (await loader.load()).master;
    },
    collectTags: (level, resourceId, rules) => collectResourceTags(orthanc, level, resourceId, rules),
    match(rule, tags): RuleVerdict {
      const result = matchRule(rule, tags);
      return { matched: result.matched, failures: result.reasons.filter((r) => !r.passed).map((r) => r.explanation) };
    },
  };
}
