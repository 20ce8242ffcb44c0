// Certificate serial numbers, in the one spelling every part of rivet-ca compares: upper-case hex
// without a leading 00 pair (what openssl's index.txt and newcerts/ names use, and what a DER
// INTEGER's content gives once its sign byte is dropped).

declare const serialBrand: unique symbol;
export type Serial = string & { readonly [serialBrand]: true };

/** Normalises hex from any of our sources (index.txt, newcerts/<serial>.pem, DER, user input). */
export function serialOf(hex: string): Serial {
  let s = hex.trim().toUpperCase();
  while (s.startsWith('00') && s.length > 2) s = s.slice(2);
  return s as Serial;
}
