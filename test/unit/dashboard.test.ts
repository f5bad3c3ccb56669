/**
 * The dashboard page as the function assembles it from its static files: the style and script are
 * inlined in place of their tags and the policy allows exactly their bytes by hash. The real files
 * are checked too: the script compiled as `npm run build` compiles it, and every element it looks
 * up by id is in index.html.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';
import {
  DASHBOARD_DIR,
  buildDashboardPage,
  loadDashboardPage,
  type DashboardPage,
} from '../../shared/operator/dashboard';
import { assertPolicyMatches, inlineTexts } from '../support/dashboard-policy';

const REPO = path.join(__dirname, '..', '..');
const SOURCES = path.join(REPO, 'shared', 'operator', 'dashboard');
const HTML = `<!doctype html><html><head><link rel="stylesheet" href="dashboard.css" /></head>
<body><p id="x"></p><script type="module" src="dashboard.js"></script></body></html>`;

/** The browser script's tsconfig as tsc reads it. */
function browserConfig(): ts.ParsedCommandLine {
  const config = ts.getParsedCommandLineOfConfigFile(
    path.join(SOURCES, 'tsconfig.json'),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => assert.fail(ts.flattenDiagnosticMessageText(d.messageText, '\n')),
    },
  );
  assert.ok(config, 'the dashboard tsconfig parses');
  return config;
}

const served = (page: DashboardPage) => [page.body, page.headers['Content-Security-Policy']] as const;

describe('dashboard page', () => {
  const files = { html: HTML, css: 'p { color: red; }\n', js: "document.getElementById('x').textContent = '$& $1';\n" };

  it('inlines the style and script in place of their tags and allows exactly their bytes by hash', () => {
    const page = buildDashboardPage(files);
    assert.doesNotMatch(page.body, /href="dashboard\.css"|src="dashboard\.js"/);
    assert.deepEqual(inlineTexts(page.body, 'style'), [files.css]);
    assert.deepEqual(
      inlineTexts(page.body, 'script'),
      [files.js],
      'inserted as it is ($& is not a replacement pattern)',
    );
    assertPolicyMatches(...served(page));
    assert.equal(page.headers['Content-Type'], 'text/html; charset=utf-8');
    assert.equal(page.headers['Cache-Control'], 'no-store');
    assert.equal(page.headers['X-Content-Type-Options'], 'nosniff');
    assert.equal(page.headers['Referrer-Policy'], 'no-referrer');
    assert.match(page.headers['Content-Security-Policy'], /frame-ancestors 'none'/);
  });

  it('follows the bytes: another script gets another hash', () => {
    const one = buildDashboardPage(files).headers['Content-Security-Policy'];
    const two = buildDashboardPage({ ...files, js: `${files.js} ` }).headers['Content-Security-Policy'];
    assert.notEqual(one, two);
  });

  it('refuses a page whose tags are missing or doubled, or a file that would end its inline element', () => {
    assert.throws(
      () =>
        buildDashboardPage({ ...files, html: HTML.replace('<script type="module" src="dashboard.js"></script>', '') }),
      /must name dashboard\.js exactly once \(found 0\)/,
    );
    assert.throws(
      () =>
        buildDashboardPage({
          ...files,
          html: HTML.replace('</head>', '<link rel="stylesheet" href="dashboard.css"></head>'),
        }),
      /must name dashboard\.css exactly once \(found 2\)/,
    );
    assert.throws(() => buildDashboardPage({ ...files, js: 'x = "</script>";' }), /dashboard\.js contains/);
    assert.throws(() => buildDashboardPage({ ...files, css: 'p{}</STYLE>' }), /dashboard\.css contains/);
  });

  it('says which file is missing and what writes it', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'dashboard-'));
    await writeFile(path.join(dir, 'index.html'), HTML);
    await writeFile(path.join(dir, 'dashboard.css'), files.css);
    assert.throws(() => loadDashboardPage(dir), /dashboard's dashboard\.js is missing from .*npm run build/);
    await writeFile(path.join(dir, 'dashboard.js'), files.js);
    assertPolicyMatches(...served(loadDashboardPage(dir)));
  });

  it('is built where the function reads it, inside the dist/ the image ships', async () => {
    const outDir = (
      JSON.parse(await readFile(path.join(REPO, 'tsconfig.build.json'), 'utf8')) as {
        compilerOptions: { outDir: string };
      }
    ).compilerOptions.outDir;
    // The function reads beside its own module: in dist/ that is the sources' place under outDir.
    assert.equal(DASHBOARD_DIR, SOURCES, 'run from the sources, it reads the sources');
    const relative = path.relative(REPO, SOURCES);
    const built = path.join(REPO, outDir, relative);
    const config = browserConfig();
    assert.equal(config.options.outDir, built, 'the script compiles there');
    const scripts = (
      JSON.parse(await readFile(path.join(REPO, 'package.json'), 'utf8')) as {
        scripts: Record<string, string>;
      }
    ).scripts;
    assert.match(scripts.build, /&& npm run build:dashboard$/, 'the build builds the page');
    for (const step of [
      `tsc -p ${relative}/tsconfig.json`,
      `cp ${relative}/index.html ${relative}/dashboard.css ${outDir}/${relative}/`,
    ])
      assert.ok(scripts['build:dashboard'].includes(step), `build:dashboard runs ${step}`);
    assert.ok(scripts.typecheck.includes(`tsc -p ${relative}/tsconfig.json --noEmit`), 'typecheck covers the script');
  });

  it('builds from the real files, and every element the script looks up is in index.html', async () => {
    const config = browserConfig();
    const source = await readFile(path.join(SOURCES, 'dashboard.ts'), 'utf8');
    const js = ts.transpileModule(source, { compilerOptions: config.options }).outputText;
    const html = await readFile(path.join(SOURCES, 'index.html'), 'utf8');
    const page = buildDashboardPage({ html, css: await readFile(path.join(SOURCES, 'dashboard.css'), 'utf8'), js });
    assertPolicyMatches(...served(page));
    assert.doesNotMatch(page.body, /(src|href)\s*=\s*["']?(https?:)?\/\//i, 'nothing from elsewhere');

    const ids = new Set([...html.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]));
    const used = [...source.matchAll(/\$(?:<\w+>)?\('([^']+)'\)|fill\('([^']+)'/g)].map((m) => m[1] ?? m[2]);
    assert.ok(used.length > 10, `the scan sees the script's lookups: ${used.join(', ')}`);
    for (const id of used) assert.ok(ids.has(id), `index.html has #${id}`);
  });
});
