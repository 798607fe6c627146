import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mask, maskDeep, registerSecret, Secret, SECRET_MASK } from '../../../src/util/secrets.js';

describe('mask()', () => {
  it('replaces every occurrence, longest secret first', () => {
    new Secret('short', 'abcdefgh');
    new Secret('long', 'abcdefgh-ijkl');
    expect(mask('x abcdefgh-ijkl y abcdefgh z abcdefghabcdefgh')).toBe(`x ${SECRET_MASK} y ${SECRET_MASK} z ${SECRET_MASK}${SECRET_MASK}`);
  });

  it('maskDeep masks Secret objects and strings inside data', () => {
    const s = new Secret('pw', 'p4ssw0rd-deep');
    expect(maskDeep({ a: ['has p4ssw0rd-deep inside', s], b: 3 })).toEqual({ a: [`has ${SECRET_MASK} inside`, SECRET_MASK], b: 3 });
  });

  it('leaves text without secrets alone', () => {
    expect(mask('nothing to hide here')).toBe('nothing to hide here');
    expect(mask('')).toBe('');
  });

  // Secrets of 8+ characters (the inventory refuses shorter ones) embedded anywhere in any text.
  // A secret containing "*" could be rebuilt from the mask itself plus the text around it: that is
  // the mask showing, not the secret leaking, so such secrets are left out.
  const secretArb = fc
    .string({ unit: 'grapheme', minLength: 8, maxLength: 40 })
    .filter((s) => s.length >= 8 && !s.includes('*'));
  const textArb = fc.string({ unit: 'binary', maxLength: 60 });

  it('property: output never contains the secret', () => {
    fc.assert(
      fc.property(secretArb, fc.array(textArb, { minLength: 1, maxLength: 5 }), (secret, parts) => {
        new Secret('prop', secret);
        const text = parts.join(secret);
        expect(mask(text)).not.toContain(secret);
      }),
      { numRuns: 300 },
    );
  });

  it('property: with several secrets registered (some overlapping), none survives', () => {
    fc.assert(
      fc.property(fc.array(secretArb, { minLength: 1, maxLength: 4 }), textArb, (secrets, filler) => {
        secrets.forEach((s) => registerSecret(s));
        // Overlap on purpose: each secret glued to the next, and a prefix of one inside another.
        const text = filler + secrets.join('') + filler + secrets.map((s) => s + s.slice(0, 3)).join(filler);
        const out = mask(text);
        for (const s of secrets) expect(out).not.toContain(s);
      }),
      { numRuns: 200 },
    );
  });
});
