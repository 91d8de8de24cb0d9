//! The benchmarks' Chromium: its command-line flags, and the network emulation of a link.

/** Flags of every benchmark browser, bar the one `ready-probe.mjs --browsers def` leaves out. */
export const BASE_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
  '--disable-quic'];

/** The benchmark's flags. PreloadTopChromeWebUI off: otherwise every fresh context (a new profile)
 * preloads the omnibox-popup WebUI in its own renderer right as the page loads — 90-330 ms of CPU
 * (Chrome trace) competing with the page on this 2-core machine; a user's browser did that long ago. */
export const BENCH_ARGS = [...BASE_ARGS, '--disable-features=PreloadTopChromeWebUI'];

/** Makes `page` load over a link of `rttMs` added to every request and `kbit` Kbit/s each way
 * (unlimited when absent): CDP Network.emulateNetworkConditions, before the page navigates. */
export async function emulateLink(context, page, { rttMs, kbit }) {
  const cdp = await context.newCDPSession(page);
  const bytesPerS = kbit ? (kbit * 1000) / 8 : -1;
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions',
    { offline: false, latency: rttMs, downloadThroughput: bytesPerS, uploadThroughput: bytesPerS });
}
