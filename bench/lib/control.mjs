/** A local agent control endpoint: answers 200 to every intervention and counts Idempotency-Keys. */
import { createServer } from 'node:http';

export async function startControlServer(scope, port = 0) {
  const keys = new Map();
  let deliveries = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      deliveries++;
      const key = req.headers['idempotency-key'];
      if (key) keys.set(key, (keys.get(key) ?? 0) + 1);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  scope.defer(() => new Promise((r) => server.close(() => r())));
  scope.defer(() => server.closeAllConnections());
  const bound = server.address().port;
  return {
    url: (path = '/') => `http://127.0.0.1:${bound}${path}`,
    stats: () => ({ deliveries, distinct_keys: keys.size, redeliveries: deliveries - keys.size }),
  };
}
