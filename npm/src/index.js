//! ES module entry of the `footfall` npm package: the SDK adapter's `init` (see sdk/js) bundled with
//! its JS edge modules (there is no generated glue: the wasm has plain imports and exports). The wasm
//! is fetched from `new URL('./footfall_bg.wasm', import.meta.url)`, which Vite and webpack 5 turn
//! into an emitted asset without any plugin.
export * from 'footfall-sdk-pkg';
export { default } from 'footfall-sdk-pkg';
