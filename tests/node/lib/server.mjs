// A real Switchboard for the node tests: the standalone binary (built from
// this checkout when SWITCHBOARD_BIN is not set) on an embedded NATS with a
// temporary data dir, on a loopback port of its own. It is stopped by its
// pid; restart keeps the data dir and the port.
import { spawn, spawnSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const SECRET = "node-tests-secret-0123456789abcdef0123456789";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

// binary is the standalone binary to run, built once per test process.
let built;
export function binary() {
  if (process.env.SWITCHBOARD_BIN) return process.env.SWITCHBOARD_BIN;
  if (built) return built;
  const out = path.join(root, ".bin", "switchboard");
  {
    const go = existsSync("/usr/local/go/bin/go") ? "/usr/local/go/bin/go" : "go";
    const r = spawnSync(go, ["build", "-o", out, "./services/standalone/cmd/switchboard"], { cwd: root, stdio: "inherit" });
    if (r.status !== 0) throw new Error("go build of the standalone binary failed");
  }
  built = out;
  return out;
}

// mint returns an HS256 token for user of org, valid ttl seconds.
export function mint(org, user, ttl = 3600, secret = SECRET) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const signed = b64({ alg: "HS256", typ: "JWT" }) + "." + b64({ sub: user, org, iat: now, exp: now + ttl });
  return signed + "." + createHmac("sha256", secret).update(signed).digest("base64url");
}

// Server is one running standalone process.
export class Server {
  constructor({ limits = "message:send=1000/1s,message:typing=1000/1s,default=1000/1s", extra = [] } = {}) {
    this.dataDir = mkdtempSync(path.join(tmpdir(), "switchboard-node-"));
    this.limits = limits;
    this.extra = extra;
    this.listen = "127.0.0.1:0";
    this.logs = [];
  }

  // start runs the process and resolves with its address once it is ready.
  async start() {
    const args = [
      "-listen", this.listen, "-nats-listen", "127.0.0.1:-1", "-data-dir", this.dataDir,
      "-jwt-secret", SECRET, "-limits", this.limits, "-max-connections-per-user", "50",
      "-max-upgrades-per-ip", "1000", "-metrics-listen", "127.0.0.1:0", ...this.extra,
    ];
    const proc = spawn(binary(), args, { stdio: ["ignore", "ignore", "pipe"] });
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
    const addr = await new Promise((resolve, reject) => {
      let buf = "";
      const timer = setTimeout(() => reject(new Error("the server was not ready in 30s:\n" + this.logs.join("\n"))), 30_000);
      proc.stderr.on("data", (chunk) => {
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          this.logs.push(line);
          if (this.logs.length > 2000) this.logs.shift();
          try {
            const rec = JSON.parse(line);
            if (rec.msg === "switchboard ready") {
              clearTimeout(timer);
              resolve(new URL(rec.ws).host);
            }
          } catch {
            // not a log record
          }
        }
      });
      proc.on("exit", (code) => { clearTimeout(timer); reject(new Error(`the server exited with ${code}:\n` + this.logs.join("\n"))); });
    });
    this.addr = addr;
    this.listen = addr; // a restart comes back on the same port
    this.url = "http://" + addr;
    return addr;
  }

  // stop sends SIGTERM (sockets are closed with 1012) and waits for the exit.
  async stop() {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill("SIGTERM");
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), 20_000);
    await this.exited;
    clearTimeout(timer);
  }

  async restart() {
    await this.stop();
    return this.start();
  }

  // close stops the process and removes its data dir.
  async close() {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
