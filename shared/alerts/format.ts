/**
 * The bodies an alert is posted as: a generic JSON body (for a site's own receiver), a Microsoft
 * Teams MessageCard (incoming webhooks and Workflows accept it) and a Slack message (`text` for
 * notifications, `blocks` for the channel). Only the fields of an Alert travel, and an Alert is
 * built from ids, rule names and redacted reasons, never from patient attributes.
 */
export const ALERT_FORMATS = ['json', 'teams', 'slack'] as const;
export type AlertFormat = (typeof ALERT_FORMATS)[number];

export const ALERT_KINDS = [
  'job-failed',
  'message-poisoned',
  'destination-down',
  'disk-nearly-full',
  'results-overdue',
  'test',
] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

export interface Alert {
  kind: AlertKind;
  /** What the alert is about (a job id, a queue, a destination name, a folder role): the rate limit's key with the kind. */
  subject: string;
  /** One line, e.g. "Job 3f… (rule ct_export) failed at anonymise". */
  title: string;
  /** The reason, already redacted. */
  text: string;
  /** Ids and figures for the receiver to filter on (jobId, ruleId, step, queue, destination, freePercent). */
  fields: Record<string, string | number>;
  /** ISO time the alert was raised. */
  at: string;
}

const SOURCE = 'autorthanc-functions';

const COLOURS: Record<AlertKind, string> = {
  'job-failed': 'D13438',
  'message-poisoned': 'D13438',
  'destination-down': 'CA5010',
  'disk-nearly-full': 'CA5010',
  'results-overdue': 'CA5010',
  test: '0078D4',
};

/** Slack reads `&`, `<` and `>` as markup (links, mentions); a reason quoting them must stay text. */
function slackText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** MessageCard text is Markdown: a reason with `*`, `_` or `<job:…>` would be rendered, not shown. */
function teamsText(text: string): string {
  return text.replace(/([\\`*_{}[\]()#+\-!|<>])/g, '\\$1');
}

export function alertBody(alert: Alert, format: AlertFormat): Record<string, unknown> {
  const facts = Object.entries(alert.fields).map(([name, value]) => ({ name, value: String(value) }));
  switch (format) {
    case 'json':
      return { source: SOURCE, ...alert };
    case 'teams':
      return {
        '@type': 'MessageCard',
        '@context': 'https://schema.org/extensions',
        summary: alert.title,
        themeColor: COLOURS[alert.kind],
        title: teamsText(alert.title),
        text: teamsText(alert.text),
        sections: [{ facts: [{ name: 'kind', value: alert.kind }, ...facts, { name: 'at', value: alert.at }] }],
      };
    case 'slack':
      return {
        text: slackText(`${alert.title}: ${alert.text}`),
        blocks: [
          { type: 'section', text: { type: 'mrkdwn', text: `*${slackText(alert.title)}*\n${slackText(alert.text)}` } },
          {
            type: 'context',
            elements: [
              {
                type: 'mrkdwn',
                text: slackText(
                  [`kind: ${alert.kind}`, ...facts.map((f) => `${f.name}: ${f.value}`), `at: ${alert.at}`].join(' · '),
                ),
              },
            ],
          },
        ],
      };
  }
}
