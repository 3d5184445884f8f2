// A TCP proxy on loopback that can cut its connections: a page loaded
// through it loses its WebSocket as it would to a network failure (no
// close frame), and cannot reconnect until the proxy is restored.
import net from "node:net";

export class CuttableProxy {
  constructor(target) {
    const [host, port] = target.split(":");
    this.target = { host, port: Number(port) };
    this.sockets = new Set();
    this.down = false;
    this.server = net.createServer((client) => {
      if (this.down) return client.destroy();
      const upstream = net.connect(this.target);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
        s.on("error", () => {});
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
  }

  async start() {
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.addr = `127.0.0.1:${this.server.address().port}`;
    this.url = "http://" + this.addr;
    return this.addr;
  }

  // cut drops every connection and refuses new ones until restore.
  cut() {
    this.down = true;
    for (const s of this.sockets) s.destroy();
  }

  restore() {
    this.down = false;
  }

  async close() {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
