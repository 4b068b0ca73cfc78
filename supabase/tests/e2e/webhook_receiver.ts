// A local HTTP receiver for ALERT_WEBHOOK_URL in the E2E tests: records every request and
// answers 200, or a chosen status for the next N requests (to exercise the retries).

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
  /** The parsed JSON body (undefined when it is not JSON). */
  json: Record<string, unknown> | undefined;
  /** The status the receiver answered. */
  status: number;
}

export interface WebhookReceiver {
  /** `http://127.0.0.1:PORT/hooks/<random>` */
  readonly url: string;
  readonly requests: ReceivedRequest[];
  /** Requests answered 2xx (the alerts that were delivered). */
  delivered(): ReceivedRequest[];
  /** Answers `status` to the next `n` requests. */
  failNext(n: number, status?: number): void;
  reset(): void;
  close(): Promise<void>;
}

export function startWebhookReceiver(): WebhookReceiver {
  const requests: ReceivedRequest[] = [];
  let failures = 0;
  let failStatus = 503;
  const path = `/hooks/${crypto.randomUUID()}`;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = await req.text();
    let json: Record<string, unknown> | undefined;
    try {
      json = JSON.parse(body);
    } catch { /* not JSON */ }
    const status = failures > 0 ? (failures--, failStatus) : 200;
    requests.push({
      method: req.method,
      path: new URL(req.url).pathname,
      headers: Object.fromEntries(req.headers),
      body,
      json,
      status,
    });
    return new Response(status === 200 ? "ok" : "unavailable", { status });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}${path}`,
    requests,
    delivered: () => requests.filter((r) => r.status >= 200 && r.status < 300),
    failNext(n, status = 503) {
      failures = n;
      failStatus = status;
    },
    reset() {
      requests.length = 0;
      failures = 0;
    },
    close: () => server.shutdown(),
  };
}

/** A URL on a loopback port where nothing listens (a receiver that is down). */
export function deadWebhookUrl(): string {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return `http://127.0.0.1:${port}/hooks/receiver-down-${crypto.randomUUID()}`;
}
