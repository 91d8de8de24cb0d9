//! Types of the `footfall` npm package: init() options and the tracker, checked by hand against
//! the SDK adapter (sdk/js) and by `tsc --strict` in the Vite fixture test (tests/fixtures/vite-app).

/** Plain JSON-like properties or traits. */
export type Properties = Record<string, unknown>;

/** Page context, as sent in `context.page` (Segment Spec). */
export interface PageContext {
  url?: string;
  path?: string;
  referrer?: string;
  title?: string;
  search?: string;
}

/** Segment-style per-call options. */
export interface CallOptions {
  /** When the event happened (defaults to now). A Date, an ISO-8601 string or epoch milliseconds. */
  timestamp?: Date | string | number;
  /** Extra context merged into the message's `context`, e.g. `{ page: {...} }` for a replayed call. */
  context?: { page?: PageContext; [key: string]: unknown };
}

/** What to capture without code. `false` turns both off. */
export interface AutocaptureOptions {
  /** A pageview on load, on SPA navigation (pushState/replaceState/popstate) and on bfcache restore. Default true. */
  pageviews?: boolean;
  /** Clicks on links, buttons and `[data-footfall-event]` elements. Default true. */
  clicks?: boolean;
}

export interface InitOptions {
  /** Write key of the source (required). */
  writeKey: string;
  /** Origin of the ingest, e.g. `https://ingest.example.com`. Default: the page's origin. */
  apiHost?: string;
  /** Where ids and the session are kept (falls back to cookie, then memory). Default `'localStorage'`. The unsent queue is only ever kept in localStorage (in memory where that is blocked, and with `'memory'`). */
  persistence?: 'localStorage' | 'cookie' | 'memory';
  /** Cookie domain, e.g. `.example.com` to share ids across subdomains. Default: the current host. */
  cookieDomain?: string;
  /** Minutes without activity before a new session. Default 30. */
  sessionTimeoutMinutes?: number;
  /** Maximum length of a session in hours. Default 24. */
  maxSessionHours?: number;
  /** Send a batch once this many events are queued. Default 20. */
  flushAt?: number;
  /** Send what is queued at least this often (ms). Default 5000. */
  flushIntervalMs?: number;
  /** Most unsent events kept; the oldest are dropped first. Default 1000. */
  maxQueueSize?: number;
  /** Default `{ pageviews: true, clicks: true }`. */
  autocapture?: AutocaptureOptions | boolean;
  /** Send and store nothing when the browser sends Do Not Track or Global Privacy Control. Default true. */
  respectPrivacySignals?: boolean;
  /** Log storage and network problems with `console.warn`. Default false. */
  debug?: boolean;
}

export interface Tracker {
  /** A custom event. */
  track(event: string, properties?: Properties, options?: CallOptions): void;
  /** A pageview (autocapture already sends one per page and SPA navigation). */
  page(name?: string, properties?: Properties, options?: CallOptions): void;
  /** Remembers the user id (sent as `userId` on later events) and sends an `identify` message. */
  identify(userId: string, traits?: Properties, options?: CallOptions): void;
  /** Logout: forgets the user, new anonymous id, new session. */
  reset(): void;
  /** Resolves when everything queued so far is acknowledged or failed for good. */
  flush(): Promise<void>;
  /** Drops the queue and sends nothing until optIn(); persisted. */
  optOut(): void;
  /** Undoes optOut(); persisted. */
  optIn(): void;
  /** The current session id (UUID v7). */
  sessionId(): string;
  /** This browser's anonymous id. */
  anonymousId(): string;
  /** The id given to identify(), until reset(). */
  userId(): string | undefined;
}

/** The name the SDK adapter's own types use (sdk/js/index.d.ts). */
export type FootfallOptions = InitOptions;

/**
 * Loads the wasm and starts tracking; resolves to the page's tracker (the same one on later calls).
 * Throws a TypeError naming the argument on wrong options.
 */
export function init(options: InitOptions): Promise<Tracker>;
export default init;

/**
 * `window.footfall` as defined by the script tag (dist/footfall.js) or the snippet: the tracker's
 * methods, callable before the SDK is ready (calls are queued with their time and page).
 */
export interface ScriptTagFootfall extends Omit<Tracker, 'sessionId' | 'anonymousId' | 'userId'> {
  /** `undefined` until the SDK is ready. */
  sessionId(): string | undefined;
  anonymousId(): string | undefined;
  userId(): string | undefined;
  /** Calls `callback` with the tracker once the SDK is ready (at once if it already is). */
  ready(callback?: (tracker: Tracker) => void): Promise<Tracker>;
  /** True once the SDK is ready. */
  loaded?: boolean;
}

declare global {
  interface Window {
    footfall?: ScriptTagFootfall;
  }
}
