import { X509Certificate } from 'node:crypto';

/*
 * Expiry reporting (issue 17 item 3): how long a certificate has left, for `provision drift` and for
 * an exporter metric. The metric is the end as a Unix timestamp, as Prometheus exporters do
 * (ssl_certificate_expiry, x509-certificate-exporter): the alert rule computes the days
 * (`(provision_certificate_not_after_seconds - time()) / 86400 < 14`), so the value stays right
 * between scrapes and needs no clock on the host.
 */

const dayMs = 24 * 60 * 60 * 1000;

export interface CertificateExpiry {
  subject: string;
  issuer: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  secondsLeft: number;
  /** Whole days left, rounded down; negative once expired. */
  daysLeft: number;
  expired: boolean;
}

export function certificateExpiry(cert: string | X509Certificate, now: Date): CertificateExpiry {
  const x = typeof cert === 'string' ? new X509Certificate(cert) : cert;
  const notAfter = new Date(x.validTo);
  const msLeft = notAfter.getTime() - now.getTime();
  return {
    subject: x.subject.replace(/\n/g, ', '),
    issuer: x.issuer.replace(/\n/g, ', '),
    serial: x.serialNumber,
    notBefore: new Date(x.validFrom),
    notAfter,
    secondsLeft: Math.floor(msLeft / 1000),
    daysLeft: Math.floor(msLeft / dayMs),
    expired: msLeft <= 0,
  };
}

/** True when the certificate ends within `days` days of `now` (or has ended). */
export function expiresWithin(cert: string | X509Certificate, days: number, now: Date): boolean {
  return certificateExpiry(cert, now).secondsLeft <= days * 86_400;
}

export const EXPIRY_METRIC = 'provision_certificate_not_after_seconds';

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

/**
 * Prometheus text format (a node-exporter textfile or an exporter's page): one gauge per
 * certificate, its end as a Unix timestamp, labelled as the caller says (host, path, role…).
 */
export function expiryMetricText(entries: Array<{ labels: Record<string, string>; cert: string | X509Certificate }>): string {
  const lines = [`# HELP ${EXPIRY_METRIC} When the certificate stops being valid (notAfter), as a Unix timestamp.`, `# TYPE ${EXPIRY_METRIC} gauge`];
  for (const { labels, cert } of entries) {
    const x = typeof cert === 'string' ? new X509Certificate(cert) : cert;
    const names = Object.keys(labels).sort();
    for (const n of names) if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(n)) throw new Error(`metric label name "${n}" is not a Prometheus label name`);
    const labelText = names.map((n) => `${n}="${escapeLabel(labels[n]!)}"`).join(',');
    lines.push(`${EXPIRY_METRIC}${labelText ? `{${labelText}}` : ''} ${Math.floor(new Date(x.validTo).getTime() / 1000)}`);
  }
  return lines.join('\n') + '\n';
}
