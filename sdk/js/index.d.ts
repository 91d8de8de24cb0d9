// Hand-written types for the Footfall SDK adapter (sdk/js/index.js). Keep in step with issue 3's API.

/** Segment-style per-call options. */
export interface CallOptions {
  /** When the call happened: a Date, an ISO-8601 string or epoch milliseconds. */
  timestamp?: Date | string | number;
  /** Merged into the message's `context`; its keys win (e.g. `{ page: { url, path, referrer, title, search } }`). */
  context?: Record<string, unknown>;
}

export type Properties = Record<string, unknown>;

export interface AutocaptureOptions {
  /** Pageview on load, on SPA navigation (path or query change) and on bfcache restore. Default true. */
  pageviews?: boolean;
  /** `$click` on links/buttons and `data-footfall-event` elements. Default true. */
  clicks?: boolean;
}

export interface FootfallOptions {
  /** Required: the source's write key. */
  writeKey: string;
  /** Ingest origin, e.g. `https://ingest.example.com`. Default: the page's origin. */
  apiHost?: string;
  /** Where ids and the session live. Default `'localStorage'` (falls back to cookie, then memory). */
  persistence?: 'localStorage' | 'cookie' | 'memory';
  /** Cookie domain, e.g. `.example.com` to share ids across subdomains. Default: the current host. */
  cookieDomain?: string;
  /** Idle time that ends a session. Default 30. */
  sessionTimeoutMinutes?: number;
  /** Longest session. Default 24. */
  maxSessionHours?: number;
  /** Send when this many events are queued. Default 20. */
  flushAt?: number;
  /** Send queued events at least this often. Default 5000. */
  flushIntervalMs?: number;
  /** Most events kept unsent (oldest dropped first). Default 1000. */
  maxQueueSize?: number;
  /** Default `{ pageviews: true, clicks: true }`; `false` turns both off. */
  autocapture?: boolean | AutocaptureOptions;
  /** Honour Do Not Track and Global Privacy Control (nothing sent, nothing stored). Default true. */
  respectPrivacySignals?: boolean;
  /** `console.warn` about dropped events and storage/network trouble. Default false. */
  debug?: boolean;
}

export interface Tracker {
  track(event: string, properties?: Properties, options?: CallOptions): void;
  page(name?: string, properties?: Properties, options?: CallOptions): void;
  identify(userId: string, traits?: Properties, options?: CallOptions): void;
  /** Logout: forget the user, new anonymous id, new session. */
  reset(): void;
  /** Resolves when everything queued so far is acknowledged or failed for good. */
  flush(): Promise<void>;
  /** Persisted: drops the queue, sends and stores no events until optIn(). */
  optOut(): void;
  optIn(): void;
  sessionId(): string;
  anonymousId(): string;
  userId(): string | undefined;
}

/** Loads the wasm and returns the page's tracker (the same one on later calls). */
export function init(options: FootfallOptions): Promise<Tracker>;
export default init;
