/**
 * The rules folder, read on every evaluation with a cache keyed by file modification time and size:
 * edits, new files and deletions apply to the next evaluation without a restart, unchanged files are
 * not parsed again, and a broken file is reported while every other rule keeps working.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DEFAULT_MASTER, type MasterSettings, type Rule, type RuleFileProblem, type RuleSetSnapshot } from './model';
import { parseMaster, parseRule } from './schema';

interface CacheEntry {
  key: string;
  rule?: Rule;
  master?: MasterSettings;
  problems: RuleFileProblem[];
}

export interface RuleLoader {
  load(): Promise<RuleSetSnapshot>;
  /** How many files were parsed since creation (tests prove the cache works). */
  readonly parses: number;
}

/** autorthanc: files whose names start with `master` or contain `template` are not rules. */
export function classify(fileName: string): 'master' | 'ignored' | 'rule' {
  const lower = fileName.toLowerCase();
  if (!lower.endsWith('.json')) return 'ignored';
  if (lower.startsWith('master')) return lower === 'master.json' ? 'master' : 'ignored';
  if (lower.includes('template')) return 'ignored';
  return 'rule';
}

export function createRuleLoader(dir: string): RuleLoader {
  const cache = new Map<string, CacheEntry>();
  let parses = 0;
  return {
    get parses() {
      return parses;
    },
    async load() {
      const rules: Rule[] = [];
      const problems: RuleFileProblem[] = [];
      const ignored: string[] = [];
      let master = DEFAULT_MASTER;
      let entries: string[];
      try {
        entries = (await fs.readdir(dir)).sort();
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        return {
          rules,
          ignored,
          master,
          loadedAt: new Date().toISOString(),
          problems: [
            {
              file: dir,
              path: '',
              severity: 'error',
              message:
                code === 'ENOENT'
                  ? 'the rules folder does not exist (ORTHANC_AUTOMATION_JSON_SCRIPTS_PATH)'
                  : `cannot read the rules folder: ${code ?? (error as Error).message}`,
            },
          ],
        };
      }
      const seen = new Set<string>();
      for (const name of entries) {
        const kind = classify(name);
        const full = path.join(dir, name);
        let stat;
        try {
          stat = await fs.stat(full);
        } catch {
          continue; // deleted between readdir and stat
        }
        if (!stat.isFile()) continue;
        if (kind === 'ignored') {
          ignored.push(name);
          continue;
        }
        seen.add(name);
        // Editors that save by rename change the inode even when mtime and size look alike.
        const key = `${stat.mtimeMs}:${stat.size}:${stat.ino}`;
        let entry = cache.get(name);
        if (!entry || entry.key !== key) {
          let text: string;
          try {
            text = await fs.readFile(full, 'utf8');
          } catch (error) {
            problems.push({
              file: name,
              path: '',
              severity: 'error',
              message: `cannot read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
            });
            continue;
          }
          parses += 1;
          if (kind === 'master') {
            const parsed = parseMaster(name, text);
            entry = { key, master: parsed.master, problems: parsed.problems };
          } else {
            const parsed = parseRule(name.replace(/\.json$/i, ''), name, text);
            entry = { key, rule: parsed.rule, problems: parsed.problems };
          }
          cache.set(name, entry);
        }
        problems.push(...entry.problems);
        if (entry.master) master = entry.master;
        if (entry.rule) rules.push(entry.rule);
      }
      for (const name of cache.keys()) if (!seen.has(name)) cache.delete(name);
      return { rules, problems, ignored, master, loadedAt: new Date().toISOString() };
    },
  };
}
