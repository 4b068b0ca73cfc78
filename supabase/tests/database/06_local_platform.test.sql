-- What the sync relies on from the Supabase platform (emulated locally by
-- supabase/bootstrap/local_platform.sql): roles, auth.uid()/auth.role()/auth.jwt(), Vault.
begin;
select plan(11);

select has_role('anon', 'role anon exists');
select has_role('authenticated', 'role authenticated exists');
select ok((select rolbypassrls from pg_roles where rolname = 'service_role'), 'service_role bypasses RLS');

set local request.jwt.claims to '{"sub":"44000000-0000-0000-0000-000000000001","role":"authenticated","email":"c@example.org"}';
select is(auth.uid(), '44000000-0000-0000-0000-000000000001'::uuid, 'auth.uid() reads sub from request.jwt.claims');
select is(auth.role(), 'authenticated', 'auth.role() reads role from request.jwt.claims');
select is(auth.jwt() ->> 'email', 'c@example.org', 'auth.jwt() returns the claims');
set local request.jwt.claims to '';
select is(auth.uid(), null, 'auth.uid() is null without claims');

create temp table secret_ids (id uuid) on commit drop;
insert into secret_ids select vault.create_secret('s3cret-one', 'hlf_test_secret', 'a test secret');
select is((select decrypted_secret from vault.decrypted_secrets where name = 'hlf_test_secret'), 's3cret-one',
  'vault.create_secret stores a secret readable from vault.decrypted_secrets');
select vault.update_secret((select id from secret_ids), 's3cret-two');
select is((select decrypted_secret from vault.decrypted_secrets where name = 'hlf_test_secret'), 's3cret-two',
  'vault.update_secret rotates it in place');

set local role service_role;
select lives_ok($$select decrypted_secret from vault.decrypted_secrets where name = 'hlf_test_secret'$$,
  'service_role may read vault.decrypted_secrets');
reset role;
set local role authenticated;
select throws_ok($$select decrypted_secret from vault.decrypted_secrets$$, '42501', null,
  'authenticated may not read vault.decrypted_secrets');
reset role;

select * from finish();
rollback;
