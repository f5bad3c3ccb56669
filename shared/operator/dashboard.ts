/**
 * The operator dashboard as one self-contained page (no CDN, no external font or script: hospital
 * networks often have no internet), put together from the static files in ./dashboard/: index.html,
 * dashboard.css and dashboard.js (compiled from dashboard.ts; `npm run build` puts all three in
 * dist/shared/operator/dashboard/, which the image ships).
 *
 * The style and the script are inlined in place of the tags in index.html that name them, and the
 * Content-Security-Policy allows exactly those bytes by their SHA-256, so the page can run nothing
 * else. The hashes are computed here from what is served, never written by hand.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';

/** Where the built page lives: beside this module, in dist/ as in the sources. */
export const DASHBOARD_DIR = path.join(__dirname, 'dashboard');

export interface DashboardFiles {
  html: string;
  css: string;
  js: string;
}

export interface DashboardPage {
  body: string;
  headers: Record<string, string>;
}

// The tags index.html names its siblings with (so the file also opens as it is, beside them).
const STYLE_TAG = /<link rel="stylesheet" href="dashboard\.css"\s*\/?>/g;
const SCRIPT_TAG = /<script type="module" src="dashboard\.js"><\/script>/g;

/** A CSP source expression for an inline element whose text is `text`. */
export const cspHash = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

/** Replaces the one `tag` in `html` by `element`; anything else is a broken build, said at start. */
function inline(html: string, tag: RegExp, element: string, file: string): string {
  const found = html.match(tag)?.length ?? 0;
  if (found !== 1) throw new Error(`dashboard index.html must name ${file} exactly once (found ${found})`);
  // A function, so that `$&` or `$'` in the script is not read as a replacement pattern.
  return html.replace(tag, () => element);
}

/** The page and its headers from the three files' text. */
export function buildDashboardPage(files: DashboardFiles): DashboardPage {
  for (const [file, text, end] of [
    ['dashboard.css', files.css, /<\/style/i],
    ['dashboard.js', files.js, /<\/script|<!--/i],
  ] as const) {
    if (end.test(text)) throw new Error(`dashboard ${file} contains ${end.source}, which would end its inline element`);
  }
  const withStyle = inline(files.html, STYLE_TAG, `<style>${files.css}</style>`, 'dashboard.css');
  const body = inline(withStyle, SCRIPT_TAG, `<script type="module">${files.js}</script>`, 'dashboard.js');
  return {
    body,
    headers: {
      'Content-Type': 'text/html; charset=utf-8',
      'Content-Security-Policy': [
        "default-src 'none'",
        "connect-src 'self'",
        "img-src 'self' data:",
        `script-src ${cspHash(files.js)}`,
        `style-src ${cspHash(files.css)}`,
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
      ].join('; '),
      'Cache-Control': 'no-store',
      'Referrer-Policy': 'no-referrer',
      'X-Content-Type-Options': 'nosniff',
    },
  };
}

/** Reads the built page from `dir`; a missing file names itself and the command that makes it. */
export function loadDashboardPage(dir = DASHBOARD_DIR): DashboardPage {
  const read = (name: string) => {
    try {
      return readFileSync(path.join(dir, name), 'utf8');
    } catch (error) {
      throw new Error(`the dashboard's ${name} is missing from ${dir} (\`npm run build\` writes it)`, { cause: error });
    }
  };
  return buildDashboardPage({ html: read('index.html'), css: read('dashboard.css'), js: read('dashboard.js') });
}
