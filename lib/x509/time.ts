// ASN.1 times as text (RFC 5280 §4.1.2.5): UTCTime YYMMDDHHMMSSZ (years 1950–2049) and
// GeneralizedTime YYYYMMDDHHMMSSZ. Read from DER and from openssl's index.txt, written for
// `openssl ca -startdate/-enddate/-crl_lastupdate`. One parser and one writer for all of them.

/** The Date of a UTCTime or GeneralizedTime string, or undefined when it is neither. */
export function parseAsn1Time(text: string): Date | undefined {
  const m = /^(\d{2}|\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (!m) return undefined;
  const year = m[1]!.length === 2 ? (Number(m[1]) >= 50 ? 1900 : 2000) + Number(m[1]) : Number(m[1]);
  return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}

/** UTCTime, as openssl writes index.txt (valid through 2049). */
export function utcTime(d: Date): string {
  const iso = d.toISOString(); // 2026-11-27T05:53:02.000Z
  return `${iso.slice(2, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
}

/** GeneralizedTime: accepted by `openssl ca` for any year, unlike UTCTime. */
export function generalizedTime(d: Date): string {
  return `${d.getUTCFullYear()}${utcTime(d).slice(2)}`;
}
