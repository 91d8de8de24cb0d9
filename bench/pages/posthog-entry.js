//! Bench entry for posthog-js: its defaults, except the host (the local counting sink) and
//! `opt_out_useragent_filter` — under Playwright `navigator.webdriver` is true and PostHog would
//! drop every event as a bot (its own advice for end-to-end tests). Resolves with the posthog
//! object once its `loaded` callback has run (PostHog's own "ready").
import posthog from 'posthog-js';

export function start(apiHost) {
  return new Promise((resolve) => {
    posthog.init('phc_footfall_bench', {
      api_host: apiHost,
      opt_out_useragent_filter: true,
      loaded: (ph) => resolve(ph),
    });
  });
}
