// The GraphiQL page of this server: GraphiQL, React and graphql-ws are served by the server
// itself (see assets.lock), and this script wires them to its endpoints. Its settings come
// from the JSON block #graphiql-config of the page, so the page needs no inline script.
(function () {
  'use strict';

  var config = JSON.parse(document.getElementById('graphiql-config').textContent);

  function absolute(path, websocket) {
    var url = new URL(path, window.location.href);
    if (websocket) {
      url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    }
    return url.toString();
  }

  function cookie(name) {
    var pairs = document.cookie ? document.cookie.split('; ') : [];
    for (var i = 0; i < pairs.length; i++) {
      var at = pairs[i].indexOf('=');
      if (at > 0 && pairs[i].slice(0, at) === name) {
        return decodeURIComponent(pairs[i].slice(at + 1));
      }
    }
    return null;
  }

  // Signed in with cookies, mutations must echo the CSRF cookie in X-CSRF-Token.
  function sameOriginFetch(url, init) {
    var options = Object.assign({}, init, { credentials: 'same-origin' });
    var headers = new Headers(options.headers || {});
    var csrf = cookie('__Host-csrf_token') || cookie('csrf_token');
    if (csrf && !headers.has('x-csrf-token')) {
      headers.set('x-csrf-token', csrf);
    }
    options.headers = headers;
    return fetch(url, options);
  }

  function headerValue(headers, name) {
    if (!headers) {
      return null;
    }
    var keys = Object.keys(headers);
    for (var i = 0; i < keys.length; i++) {
      if (keys[i].toLowerCase() === name && typeof headers[keys[i]] === 'string') {
        return headers[keys[i]];
      }
    }
    return null;
  }

  // One fetcher per Authorization header of the Headers pane: the WebSocket client of
  // subscriptions sends it in connection_init, as the server expects (without one, the
  // socket authenticates with the access-token cookie, if any).
  var fetchers = new Map();
  function fetcherFor(authorization) {
    var key = authorization || '';
    var found = fetchers.get(key);
    if (found) {
      return found;
    }
    var wsClient = graphqlWs.createClient({
      url: absolute(config.subscriptionEndpoint, true),
      lazy: true,
      connectionParams: authorization ? { authorization: authorization } : {},
    });
    var made = GraphiQL.createFetcher({
      url: absolute(config.endpoint, false),
      wsClient: wsClient,
      fetch: sameOriginFetch,
    });
    fetchers.set(key, made);
    return made;
  }

  function fetcher(params, options) {
    var authorization = headerValue(options && options.headers, 'authorization');
    return fetcherFor(authorization)(params, options);
  }

  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: config.defaultQuery,
      defaultEditorToolsVisibility: 'headers',
    })
  );
})();
