//! The URL footfall.js was loaded from, captured while the script is executing (the only moment
//! `document.currentScript` is set). The build injects this module and points the SDK adapter's
//! `import.meta.url` at it, so the wasm is fetched from next to footfall.js wherever it is hosted.
const d = document;
const el =
  d.currentScript ||
  // Fallback for the rare loader that evaluates the script outside a <script> element.
  d.querySelector('script[src*="footfall"]');

export const footfallScriptUrl = (el && el.src) || location.href;
export const footfallScriptElement = el;
