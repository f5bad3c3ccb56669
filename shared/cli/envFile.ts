/**
 * A `.env` file edited the way a person would: values are changed on their own line, new ones are
 * appended, and every comment, blank line and the order stay as they were. Values are read with Node's
 * own parser (what `npm start` uses) and written so that Node and docker-compose read them back alike.
 */
import { parseEnv } from 'node:util';

interface Line {
  text: string;
  /** The variable this line sets (`NAME=value`), if it sets one. */
  name?: string;
}

const ASSIGNMENT = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=/;
/** Written bare: everything a path, an AE title, a port, a generated secret or one line of JSON uses. */
const BARE_VALUE = /^[^\s'"`#\\$]*(?: [^\s'"`#\\$]+)*$|^\{[^\n#'$]*\}$/;

export class EnvFile {
  private readonly lines: Line[];

  private constructor(lines: Line[]) {
    this.lines = lines;
  }

  static parse(text: string): EnvFile {
    const body = text.endsWith('\n') ? text.slice(0, -1) : text;
    const lines = body === '' ? [] : body.split('\n');
    return new EnvFile(lines.map((line) => ({ text: line, name: ASSIGNMENT.exec(line)?.[1] })));
  }

  /** The value of NAME as Node would read it (the last assignment wins), undefined when unset. */
  get(name: string): string | undefined {
    const line = [...this.lines].reverse().find((l) => l.name === name);
    if (!line) return undefined;
    return parseEnv(line.text)[name] ?? '';
  }

  has(name: string): boolean {
    return this.lines.some((l) => l.name === name);
  }

  /** Every variable set in the file, as Node reads them. */
  values(): Record<string, string> {
    return parseEnv(this.lines.map((l) => l.text).join('\n')) as Record<string, string>;
  }

  /** Sets NAME on its own line (the first of them; later duplicates are dropped), else appends it. */
  set(name: string, value: string): void {
    const text = `${name}=${quote(value)}`;
    const at = this.lines.findIndex((l) => l.name === name);
    if (at < 0) {
      this.lines.push({ text, name });
      return;
    }
    this.lines[at] = { text, name };
    for (let i = this.lines.length - 1; i > at; i--) if (this.lines[i].name === name) this.lines.splice(i, 1);
  }

  toString(): string {
    return this.lines.map((l) => l.text).join('\n') + '\n';
  }
}

/** A value as it is written after `NAME=`: bare when it is plain, else in single quotes. */
export function quote(value: string): string {
  if (/[\r\n]/.test(value)) throw new Error('a .env value cannot hold a line break');
  if (BARE_VALUE.test(value) && value.trim() === value) return value;
  if (value.includes("'")) {
    if (value.includes('"')) throw new Error('a .env value cannot hold both quote characters');
    return `"${value}"`;
  }
  return `'${value}'`;
}
