// Stock y-websocket providers for the node:test suites (not a test file itself): each
// `providers()` set connects `WebsocketProvider`s (npm y-websocket, with `ws` in Node) and
// destroys them, with their documents, when the test file is done.
import WebSocket from 'ws';
import { WebsocketProvider } from 'y-websocket';

/** A set of providers: `connect(url, room, doc, params)`, `destroy(provider)`, `destroyAll()`. */
export function providers() {
  const open = new Set();
  /** Destroys the provider and its document (whose awareness holds an interval timer). */
  const destroy = (provider) => {
    provider.destroy();
    provider.doc.destroy();
    open.delete(provider);
  };
  return {
    connect(url, room, doc, params = {}) {
      const provider = new WebsocketProvider(url, room, doc, { WebSocketPolyfill: WebSocket, disableBc: true, params });
      open.add(provider);
      return provider;
    },
    destroy,
    destroyAll() {
      for (const provider of open) destroy(provider);
    },
  };
}
