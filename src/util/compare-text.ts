/**
 * Orders strings by their UTF-16 code units (what `Array.prototype.sort()` does without a
 * comparator): the same on every machine and locale, and cheap. `a.localeCompare(b)` gives a
 * language's order instead, at the price of starting ICU's collator on its first call (tens of ms
 * of a CLI's start-up, README "Speed": start-up); use it only where people read the order as words.
 * In this order upper case comes before lower case and `_` after letters and digits ("B" < "a").
 */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
