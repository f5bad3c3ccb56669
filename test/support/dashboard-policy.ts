/**
 * The dashboard's Content-Security-Policy checked against the page it comes with: the inline script
 * and style are each allowed by the SHA-256 of their exact text, and nothing else is.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';

const sha256 = (text: string) => createHash('sha256').update(Buffer.from(text, 'utf8')).digest('base64');

/** The text of each inline element of `tag` in the served page. */
export function inlineTexts(html: string, tag: 'script' | 'style'): string[] {
  return [...html.matchAll(new RegExp(`<${tag}[^>]*>([\\s\\S]*?)</${tag}>`, 'g'))].map((m) => m[1]);
}

/** The hashes a directive of the served policy allows. */
function allowed(policy: string, directive: string): string[] {
  const sources = policy
    .split(';')
    .map((d) => d.trim().split(/\s+/))
    .find(([name]) => name === directive);
  assert.ok(sources, `the policy has ${directive}: ${policy}`);
  return sources.slice(1);
}

/** Asserts the policy allows by hash exactly the inline script and style the page carries, and nothing else. */
export function assertPolicyMatches(html: string, policy: string): void {
  assert.doesNotMatch(policy, /unsafe-inline|unsafe-eval|\*/);
  assert.match(policy, /^default-src 'none';/);
  for (const [tag, directive] of [
    ['script', 'script-src'],
    ['style', 'style-src'],
  ] as const) {
    const texts = inlineTexts(html, tag);
    assert.equal(texts.length, 1, `one inline ${tag}`);
    assert.deepEqual(allowed(policy, directive), [`'sha256-${sha256(texts[0])}'`], `${directive} is the ${tag}'s hash`);
  }
}
