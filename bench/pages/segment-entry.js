//! Bench entry for @segment/analytics-next: its defaults, except the Segment.io destination's host
//! (the local counting sink, over http) and inline CDN settings so no settings fetch leaves the
//! machine. Resolves with the Analytics instance once `load` has finished (Segment's "ready").
import { AnalyticsBrowser } from '@segment/analytics-next';

export async function start(apiHost) {
  const host = apiHost.replace(/^https?:\/\//, '');
  const [analytics] = await AnalyticsBrowser.load({
    writeKey: 'footfall_bench',
    cdnURL: apiHost,
    cdnSettings: {
      integrations: {
        'Segment.io': { apiKey: 'footfall_bench', apiHost: `${host}/v1`, protocol: 'http' },
      },
    },
  });
  return analytics;
}
