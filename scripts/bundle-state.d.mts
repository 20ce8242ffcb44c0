// Types for scripts/bundle-state.mjs (plain JavaScript: the launcher runs it before any TypeScript loader).
export type BundleState =
  | { manifest: { bundle: string; output: { path: string; sha256: string } }; stale?: undefined; missing?: undefined }
  | { stale: string; manifest?: undefined; missing?: undefined }
  | { missing: true; manifest?: undefined; stale?: undefined };
export function bundleState(root: string, tool: string): BundleState;
