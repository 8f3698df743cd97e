// Nova stores times as naive UTC 'YYYY-MM-DD HH:MM:SS[.ffffff]' (oslo.db DateTime columns,
// read with mysql2 dateStrings). One conversion for every reader.

/** 'YYYY-MM-DD HH:MM:SS[.ffffff]' -> 'YYYY-MM-DDTHH:MM:SSZ' (fraction dropped, as Nova's objects serialise it). */
export function naiveUtcToIso(value: string): string;
export function naiveUtcToIso(value: string | null): string | null;
export function naiveUtcToIso(value: string | null): string | null {
  if (value === null) return null;
  return `${value.replace(' ', 'T').replace(/\.\d+$/, '')}Z`;
}

/** The instant a naive-UTC time names. */
export function naiveUtcToDate(value: string): Date {
  return new Date(`${value.replace(' ', 'T')}Z`);
}
