import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { clearRegisteredSecrets, encodedForms, mask, maskDeep, registerSecret, Secret, SECRET_MASK } from '../../../src/util/secrets.js';

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

describe('mask(): the encoded forms of a secret', () => {
  const secret = `Pa55\\w0rd"20'24 ü/&+`;
  new Secret('encoded', secret);
  const bytes = Buffer.from(secret);
  const cases: Array<[string, string]> = [
    ['JSON (| dump)', JSON.stringify(secret)],
    ['JSON in JSON', JSON.stringify(JSON.stringify(secret))],
    ['JSON, non-ASCII as \\u', JSON.stringify(secret).replace(/ü/g, '\\u00fc')],
    ['encodeURIComponent (| urlencode)', encodeURIComponent(secret)],
    ['encodeURIComponent, lower-case hex', encodeURIComponent(secret).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase())],
    ['form encoding', new URLSearchParams({ p: secret }).toString()],
    ['shell single quotes', `'${secret.replace(/'/g, `'\\''`)}'`],
    ['shell double quotes', `"${secret.replace(/[\\"$`]/g, '\\$&')}"`],
    ['HTML (| escape)', secret.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/'/g, '&#39;').replace(/\\/g, '&#92;')],
    ['hex', bytes.toString('hex')],
    ['HEX', bytes.toString('hex').toUpperCase()],
    ['base64', bytes.toString('base64')],
    ['base64url', bytes.toString('base64url')],
  ];

  it.each(cases)('%s', (_name, encoded) => {
    expect(encoded).not.toContain(secret); // the case is an encoding, not the raw value
    const out = mask(`before ${encoded} after`);
    expect(out).toContain(SECRET_MASK);
    expect(out.startsWith('before ')).toBe(true);
    expect(out.endsWith(' after')).toBe(true);
    // What is left of the encoded form is its quotes, or a character at each edge of base64.
    expect(out.length - `before  after`.length - SECRET_MASK.length).toBeLessThanOrEqual(6);
  });

  it('property: inside a longer base64 text, at any byte offset, the secret cannot be decoded back', () => {
    const secretArb = fc.string({ unit: 'grapheme', minLength: 8, maxLength: 30 }).filter((s) => s.length >= 8 && !s.includes('*'));
    fc.assert(
      fc.property(secretArb, fc.uint8Array({ maxLength: 20 }), fc.uint8Array({ maxLength: 20 }), (s, before, after) => {
        clearRegisteredSecrets();
        registerSecret(s);
        const secretBytes = Buffer.from(s);
        const b64 = Buffer.concat([before, secretBytes, after]).toString('base64');
        const out = mask(b64);
        expect(out).toContain(SECRET_MASK);
        // Whatever alignment the decoder picks, the secret's bytes are not in what is left.
        for (let skip = 0; skip < 4; skip++) {
          expect(Buffer.from(out.replace(/\*/g, '').slice(skip), 'base64').includes(secretBytes)).toBe(false);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('encodedForms: one list per secret, every form at least 4 characters', () => {
    const forms = encodedForms('abcdefgh');
    expect(forms[0]).toBe('abcdefgh');
    expect(forms).toContain(Buffer.from('abcdefgh').toString('hex'));
    expect(forms.every((f) => f.length >= 4)).toBe(true);
  });

  it('a secret under 4 characters (a short sudo password from an Ansible inventory) is masked where it stands as a token', () => {
    new Secret('ansible_become_password', 'q7!');
    expect(mask('sudo: password q7! refused')).toBe(`sudo: password ${SECRET_MASK} refused`);
    expect(mask('{"become":"q7!"}')).toBe(`{"become":"${SECRET_MASK}"}`);
    expect(mask('q7!')).toBe(SECRET_MASK);
    // Inside a word it is ordinary text: masking it there would scramble every line.
    expect(mask('xq7!')).toBe('xq7!');
    expect(mask('q7!a')).toBe('q7!a');
  });
});
