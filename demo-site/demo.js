//! Footfall demo site behaviour shared by every page: the ids panel, sign in / sign out, and the
//! single-page-app navigation of app.html. Loaded before footfall.js so it never misses the
//! `footfall:ready` event; everything else is plain DOM code a site owner would write.
(function () {
  var w = window;

  // Runs fn(tracker) once the SDK is ready: at once when it already is, else on `footfall:ready`.
  function whenReady(fn) {
    if (w.footfall && w.footfall.loaded) return fn(w.footfall);
    w.addEventListener('footfall:ready', function () { fn(w.footfall); }, { once: true });
  }

  function setText(id, value) {
    var el = document.getElementById(id);
    if (el) el.textContent = value || '—';
  }

  // The panel shows what the SDK holds right now; ids change on identify, reset and session rotation.
  function renderPanel() {
    var ff = w.footfall;
    if (!ff || !ff.loaded) return;
    setText('ff-status', 'ready in ' + Math.round(w.footfallReadyAt) + ' ms');
    setText('ff-session', ff.sessionId());
    setText('ff-anonymous', ff.anonymousId());
    setText('ff-user', ff.userId());
    var signedIn = !!ff.userId();
    var signin = document.getElementById('signin-form');
    var signout = document.getElementById('signout');
    if (signin) signin.hidden = signedIn;
    if (signout) signout.hidden = !signedIn;
  }

  w.addEventListener('footfall:ready', function () {
    // Time from navigation start to a usable tracker (also as the `footfall:ready` performance mark).
    w.footfallReadyAt = performance.now();
  }, { once: true });

  document.addEventListener('DOMContentLoaded', function () {
    whenReady(function () {
      renderPanel();
      setInterval(renderPanel, 1000);
    });

    var form = document.getElementById('signin-form');
    if (form) {
      form.addEventListener('submit', function (e) {
        e.preventDefault();
        var email = form.elements.email.value.trim();
        // Only the e-mail becomes the user id; the password goes nowhere (and autocapture never
        // reads input values).
        form.elements.password.value = '';
        whenReady(function (ff) {
          ff.identify(email, { email: email, plan: 'free' });
          renderPanel();
        });
      });
    }
    var signout = document.getElementById('signout');
    if (signout) {
      signout.addEventListener('click', function () {
        whenReady(function (ff) {
          ff.track('Signed Out');
          ff.reset();
          renderPanel();
        });
      });
    }

    // app.html: a tiny single-page app. Links carry data-view; navigation uses history.pushState,
    // and the SDK's autocapture sends one pageview per change of path or query.
    var app = document.getElementById('app-view');
    if (app) {
      var views = {
        inbox: ['Inbox', 'Three new messages from your team.'],
        reports: ['Reports', 'Weekly visitors are up 12%.'],
        settings: ['Settings', 'Notification and privacy preferences.'],
      };
      var show = function (v) {
        v = v || new URLSearchParams(location.search).get('view') || 'inbox';
        var view = views[v] || views.inbox;
        app.querySelector('h2').textContent = view[0];
        app.querySelector('p').textContent = view[1];
        document.title = view[0] + ' · Footfall demo app';
        document.querySelectorAll('[data-view]').forEach(function (a) {
          if (a.getAttribute('data-view') === v) a.setAttribute('aria-current', 'page');
          else a.removeAttribute('aria-current');
        });
      };
      document.querySelectorAll('[data-view]').forEach(function (a) {
        a.addEventListener('click', function (e) {
          e.preventDefault();
          // Render first so the pageview that pushState triggers carries the new title.
          show(a.getAttribute('data-view'));
          history.pushState({}, '', '?view=' + a.getAttribute('data-view'));
        });
      });
      w.addEventListener('popstate', function () { show(); });
      show();
    }
  });
})();
