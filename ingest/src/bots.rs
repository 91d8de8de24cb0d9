//! Known bots and crawlers, recognised by their user agent.
//!
//! A case-insensitive substring list: search-engine and social crawlers, SEO and AI scrapers,
//! uptime monitors and page audits, headless and automated browsers. The generic words `bot`,
//! `crawl` and `spider` catch the long tail, minus a few real devices whose names contain them.
//!
//! Deliberately not listed: HTTP libraries and command-line tools (`curl`, `python-requests`,
//! `Go-http-client`…) and in-app browsers (Pinterest, LinkedIn, Yandex and Sogou apps, Electron apps). The first are
//! what server-side integrations send with (a legitimate backend `identify` must not be dropped
//! by `--drop-bots`), the second are real people. An absent or empty agent is not a bot either,
//! for the same reason. False positives cost a flag (`context.bot: true`) or, with `--drop-bots`,
//! a dropped event; false negatives cost a bot event counted as human — so the list errs towards
//! precision and is checked against real browser agents in the tests.

use std::sync::OnceLock;

use aho_corasick::AhoCorasick;

/// Substrings (lower case) that mark an agent as automated.
const PATTERNS: &[&str] = &[
    // Generic words used by most crawlers (Googlebot, bingbot, GPTBot, AhrefsBot, …).
    "bot",
    "crawl",
    "spider",
    "slurp", // Yahoo
    // Named crawlers and fetchers without those words.
    "mediapartners-google",
    "adsbot-google",
    "apis-google",
    "feedfetcher",
    "google-inspectiontool",
    "google-read-aloud",
    "googleother",
    "bingpreview",
    "facebookexternalhit",
    "facebookcatalog",
    "meta-externalagent",
    "ia_archiver",
    "archive.org_bot",
    "baiduspider",
    "exabot",
    "petalsearch",
    "ahrefs",
    "semrush",
    "mj12",
    "dotbot",
    "screaming frog",
    "sitebulb",
    "chatgpt-user",
    "perplexity",
    "anthropic-ai",
    "claude-web",
    "cohere-ai",
    "bytespider",
    "diffbot",
    "embedly",
    "quora link preview",
    "skypeuripreview",
    "vkshare",
    "outbrain",
    // Monitors and audits.
    "pingdom",
    "uptimerobot",
    "statuscake",
    "site24x7",
    "newrelicpinger",
    "datadog",
    "lighthouse",
    "pagespeed",
    "gtmetrix",
    "webpagetest",
    "ptst/", // WebPageTest agent
    // Headless and automated browsers.
    "headlesschrome",
    "phantomjs",
    "slimerjs",
    "puppeteer",
    "playwright",
    "selenium",
    "webdriver",
    "cypress",
    "prerender",
];

/// Agents that contain a generic word but are real devices or browsers.
const EXCEPTIONS: &[&str] = &["cubot", "robotics", "spiderman"];

/// Patterns and exceptions as case-insensitive automata, built once: one pass over the agent
/// instead of a lowercase copy and ~60 substring searches (issue 5: 9 % of a `/v1/track`).
struct Automata {
    patterns: AhoCorasick,
    exceptions: AhoCorasick,
}

fn automata() -> &'static Automata {
    static A: OnceLock<Automata> = OnceLock::new();
    A.get_or_init(|| {
        let build = |words: &[&str]| {
            AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(words)
                .expect("static patterns build")
        };
        Automata {
            patterns: build(PATTERNS),
            exceptions: build(EXCEPTIONS),
        }
    })
}

/// Whether a user agent belongs to a known bot, crawler, monitor or automated browser.
pub fn is_bot(user_agent: &str) -> bool {
    // Agents are short; the first KiB is plenty and bounds the work on hostile input.
    const MAX_CHECKED: usize = 1024;
    let ua = user_agent.trim();
    let mut end = ua.len().min(MAX_CHECKED);
    while !ua.is_char_boundary(end) {
        end -= 1;
    }
    let ua = &ua[..end];
    let a = automata();
    if !a.exceptions.is_match(ua) {
        return a.patterns.is_match(ua);
    }
    // Rare: cut the exceptions out first (what is left around them may still name a bot).
    let mut cleaned = ua.to_ascii_lowercase();
    for e in EXCEPTIONS {
        if cleaned.contains(e) {
            cleaned = cleaned.replace(e, "");
        }
    }
    a.patterns.is_match(&cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BROWSERS: &[&str] = &[
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 10; CUBOT_X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.87",
        "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 14; Pixel 7 Build/AP2A; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/126.0.6478.71 Mobile Safari/537.36 [Pinterest/Android]",
        // Server-side integrations and unknown agents are not flagged.
        "analytics-python/2.3.2",
        "python-requests/2.32.3",
        "curl/8.5.0",
        "",
    ];

    const BOTS: &[&str] = &[
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; GPTBot/1.1; +https://openai.com/gptbot",
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/112.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
        "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
        "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
        "Mediapartners-Google",
        "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)",
    ];

    #[test]
    fn browsers_are_not_bots() {
        for ua in BROWSERS {
            assert!(!is_bot(ua), "{ua}");
        }
    }

    #[test]
    fn known_bots_are() {
        for ua in BOTS {
            assert!(is_bot(ua), "{ua:?}");
        }
    }

    /// The former implementation: lowercase copy, cut exceptions, substring search.
    fn reference(user_agent: &str) -> bool {
        let ua = user_agent.trim();
        let mut end = ua.len().min(1024);
        while !ua.is_char_boundary(end) {
            end -= 1;
        }
        let mut cleaned = ua[..end].to_ascii_lowercase();
        for e in EXCEPTIONS {
            cleaned = cleaned.replace(e, "");
        }
        PATTERNS.iter().any(|p| cleaned.contains(p))
    }

    #[test]
    fn automaton_agrees_with_substring_search() {
        let mut agents: Vec<String> = BROWSERS.iter().chain(BOTS).map(|s| s.to_string()).collect();
        agents.extend(
            [
                "CUBOT phone bingBOT",
                "bcubotot",
                "Robotics lab browser",
                "SpiderMan Crawler",
                "xROBOTICSx",
                "  HeadlessChrome  ",
                "Ptst/1.0",
            ]
            .map(str::to_owned),
        );
        for p in PATTERNS.iter().chain(EXCEPTIONS) {
            agents.push(format!("Mozilla/5.0 {}", p.to_uppercase()));
        }
        for ua in &agents {
            assert_eq!(is_bot(ua), reference(ua), "{ua:?}");
        }
    }

    #[test]
    fn hostile_agents_are_cheap_and_safe() {
        let long = format!("{}Googlebot", "é".repeat(100_000));
        assert!(!is_bot(&long), "only the first KiB is looked at");
        assert!(is_bot(&format!("Googlebot{}", "x".repeat(100_000))));
    }
}
