/**
 * unattended_upgrades_extra_origins takes unattended-upgrades' own Origins-Pattern syntax (it was
 * checked like a package name, so no real pattern passed) and still refuses what would break out of
 * the quoted string of the apt.conf file it is written into.
 */
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import '../../../src/roles/builtin.js';
import { getRole } from '../../../src/roles/index.js';

const schema = (getRole('common')!.vars.shape as Record<string, z.ZodType>).unattended_upgrades_extra_origins!;

describe('unattended_upgrades_extra_origins', () => {
  it.each([
    'origin=Debian,codename=${distro_codename}-updates,label=Debian',
    'o=Docker,a=stable',
    'site=apt.postgresql.org',
    'origin=${distro_id},archive=${distro_codename}-backports,component=main',
  ])('accepts %s', (pattern) => {
    expect(schema.safeParse([pattern]).success).toBe(true);
  });

  it.each([
    ['a package name', 'htop'],
    ['an unknown key', 'vendor=Debian'],
    ['an empty value', 'origin='],
    ['a quote and a new statement', 'origin=x";\nUnattended-Upgrade::Remove-Unused-Dependencies "true'],
    ['a brace', 'origin=x}'],
    ['another ${…} than the two it expands', 'origin=${HOME}'],
  ])('refuses %s', (_what, pattern) => {
    expect(schema.safeParse([pattern]).success).toBe(false);
  });
});
