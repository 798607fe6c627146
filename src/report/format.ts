import type { HostCounts, RunEvent } from '../executor/events.js';
import { renderChange } from './diff.js';

export interface FormatOptions {
  diff: boolean;
  verbose: number;
  color: boolean;
}

const paint = (on: boolean, code: number) => (s: string) => (on ? `\x1b[${code}m${s}\x1b[0m` : s);

export function colors(on: boolean) {
  return { green: paint(on, 32), yellow: paint(on, 33), red: paint(on, 31), cyan: paint(on, 36), dim: paint(on, 2), bold: paint(on, 1), magenta: paint(on, 35) };
}

function fmtMs(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** Plain-text lines for one event (the non-TTY renderer, and the TTY renderer's log lines). */
export function formatEvent(e: RunEvent, o: FormatOptions): string[] {
  const c = colors(o.color);
  switch (e.kind) {
    case 'run-start':
      return [c.bold(`${e.check ? 'CHECK (dry run) ' : ''}${e.playbook} on ${e.hosts.length} host(s) of ${e.inventory}`)];
    case 'play-start':
      return [c.bold(`PLAY ${e.play} [${e.hosts.join(', ')}]`)];
    case 'play-skipped':
      return [c.cyan(`PLAY ${e.play}: skipped: ${e.reason}`)];
    case 'host-connected':
      return o.verbose ? [c.dim(`${e.host}: connected, facts read (${fmtMs(e.ms)})`)] : [];
    case 'host-unreachable':
      return [c.red(`${e.host}: UNREACHABLE: ${e.reason}`) + (e.hint ? c.dim(` (hint: ${e.hint})`) : '')];
    case 'task-start':
      return [];
    case 'task-result': {
      const label = `${e.handler ? 'handler ' : ''}${e.role ? e.role + ' : ' : ''}${e.task}`;
      const lines: string[] = [];
      if (e.status === 'ok') {
        if (o.verbose) lines.push(c.green(`${e.host}: ok: ${label}`) + c.dim(` (${fmtMs(e.ms)})`));
      } else if (e.status === 'skipped') {
        if (o.verbose) lines.push(c.cyan(`${e.host}: skipped: ${label}`));
      } else if (e.status === 'changed') {
        lines.push(c.yellow(`${e.host}: changed: ${label}`) + c.dim(` (${fmtMs(e.ms)})`));
        for (const ch of e.changes) {
          if (o.diff) lines.push(...renderChange(ch).split('\n').map((l) => '    ' + colorDiffLine(l, c)));
          else lines.push(c.dim(`    ${ch.kind} ${ch.target}: ${ch.action}`));
        }
      } else if (e.status === 'unknown') {
        lines.push(c.magenta(`${e.host}: unknown: ${label}: ${e.msg ?? ''} (a dry run cannot know it)`));
        for (const ch of e.changes) lines.push(c.dim(`    ${ch.kind} ${ch.target}: ${ch.action}`));
      } else if (e.status === 'refused') {
        lines.push(c.red(`${e.host}: REFUSED (not in the plan): ${label}: ${e.msg ?? ''}`));
      } else if (e.status === 'ignored') {
        lines.push(c.magenta(`${e.host}: FAILED (ignored): ${label}: ${e.msg ?? ''} ...ignoring`));
      } else {
        lines.push(c.red(`${e.host}: FAILED: ${label}: ${e.msg ?? ''}`));
      }
      if (e.note && (o.verbose || e.status !== 'ok')) lines.push(c.dim(`    note: ${e.note}`));
      return lines;
    }
    case 'command': {
      if (o.verbose < 2) return [];
      const head = c.dim(`${e.host}: $ ${e.command.split('\n')[0]}${e.command.includes('\n') ? ' …' : ''} (exit ${e.code}, ${fmtMs(e.ms)})`);
      return [head, ...(e.output ? e.output.split('\n').map((l) => c.dim(`    | ${l}`)) : [])];
    }
    case 'warning':
      return [c.magenta(`${e.host ? e.host + ': ' : ''}warning: ${e.msg}`)];
    case 'recap':
      return formatRecap(e.hosts, e.wallMs, e.check, o.color);
  }
}

function colorDiffLine(l: string, c: ReturnType<typeof colors>): string {
  if (l.startsWith('+++') || l.startsWith('---')) return c.bold(l);
  if (l.startsWith('+')) return c.green(l);
  if (l.startsWith('-')) return c.red(l);
  if (l.startsWith('@@')) return c.cyan(l);
  return l;
}

export function formatRecap(hosts: Record<string, HostCounts>, wallMs: number, check: boolean, color: boolean): string[] {
  const c = colors(color);
  const names = Object.keys(hosts);
  const w = Math.max(4, ...names.map((n) => n.length));
  const lines = [c.bold(`RECAP${check ? ' (check: nothing was changed)' : ''}`)];
  for (const n of names) {
    const h = hosts[n]!;
    const status = h.unreachable || h.failed || h.refused ? c.red : h.changed ? c.yellow : c.green;
    lines.push(
      `${status(n.padEnd(w))}  ok=${h.ok}  changed=${h.changed}  failed=${h.failed}  unreachable=${h.unreachable}  skipped=${h.skipped}  ignored=${h.ignored}${h.refused ? `  refused=${h.refused}` : ''}${h.unknown ? `  unknown=${h.unknown}` : ''}`,
    );
  }
  lines.push(c.dim(`wall time ${fmtMs(wallMs)}`));
  return lines;
}
