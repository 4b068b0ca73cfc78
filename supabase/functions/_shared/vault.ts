// Credentials: from the environment when DYNAMICS_TENANT_ID/CLIENT_ID/CLIENT_SECRET are set
// (break-glass, local runs), otherwise from Supabase Vault on every token fetch (about once an
// hour), so a secret rotated in Vault is used by the next token fetch without a redeploy.
import type { Credentials } from "./core.ts";
import type { Sql } from "./db.ts";
import { registerSecret } from "./log.ts";

const NAMES = ["dynamics_tenant_id", "dynamics_client_id", "dynamics_client_secret"] as const;

export class CredentialsUnavailable extends Error {
  override name = "CredentialsUnavailable";
}

export function credentialProvider(
  sql: Sql,
  fromEnv?: Credentials,
): () => Promise<Credentials> {
  if (fromEnv) {
    registerSecret(fromEnv.clientSecret);
    return () => Promise.resolve(fromEnv);
  }
  return async () => {
    const values = await readVault(sql, [...NAMES]);
    const creds = {
      tenantId: values.get("dynamics_tenant_id") ?? "",
      clientId: values.get("dynamics_client_id") ?? "",
      clientSecret: values.get("dynamics_client_secret") ?? "",
    };
    registerSecret(creds.clientSecret);
    if (!creds.tenantId || !creds.clientId || !creds.clientSecret) {
      const missing = NAMES.filter((n) => !values.get(n)).join(", ");
      throw new CredentialsUnavailable(`Vault secrets missing: ${missing}`);
    }
    return creds;
  };
}

/** The Dataverse base URL from Vault (`dynamics_base_url`), when not in the environment. */
export async function vaultBaseUrl(sql: Sql): Promise<string | undefined> {
  return (await readVault(sql, ["dynamics_base_url"])).get("dynamics_base_url");
}

async function readVault(sql: Sql, names: string[]): Promise<Map<string, string>> {
  const rows = await sql<{ name: string; decrypted_secret: string | null }[]>`
    select name, decrypted_secret from vault.decrypted_secrets where name = any(${names}::text[])`;
  return new Map(
    rows.filter((r) => r.decrypted_secret).map((r) => [r.name, r.decrypted_secret!.trim()]),
  );
}
