// A small frontend against the client types openapi-typescript generates from
// /api/openapi.json (./api.d.ts, written by the test). It must compile under
// tsc --strict, and the test runs it against the test instance.
import type { components, paths } from './api';

type S = components['schemas'];
type OrderQuery = NonNullable<paths['/api/orders/']['get']['parameters']['query']>;

async function call<T>(base: string, method: string, path: string, body?: unknown,
                       token?: string): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers['Authorization'] = `Bearer ${token}`;
  const r = await fetch(base + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
  return (await r.json()) as T;
}

export async function main(base: string, name: string): Promise<void> {
  const password = 'Tea-Party-1865!';
  const register: S['RegisterRequest'] = {
    username: name, email: `${name}@example.com`, password, password2: password,
    first_name: 'Alice', role: 'student',
  };
  const registered = await call<S['Registered']>(base, 'POST', '/api/auth/register/', register);
  const me: S['Me'] = registered.user;

  const login: S['LoginRequest'] = { username: me.username, password };
  const tokens = await call<S['LoginTokens']>(base, 'POST', '/api/auth/login/', login);
  const access: string = tokens.access;

  const order: S['OrderRequest'] = { product_name: 'Blue mug', quantity: 2, price: '12.50' };
  const placed = await call<S['Order']>(base, 'POST', '/api/orders/', order, access);
  const pending: S['Order']['status'] = 'pending';
  if (placed.status !== pending || placed.total !== '25.00') throw new Error('bad order');

  const query: OrderQuery = { status: 'pending', page: 1, page_size: 10 };
  const qs = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)]));
  const page = await call<S['PaginatedOrderList']>(base, 'GET', `/api/orders/?${qs}`, undefined,
                                                  access);
  const ids: number[] = page.results.map((o) => o.id);
  if (page.count !== 1 || ids[0] !== placed.id) throw new Error('bad list');

  const pay: S['PaymentRequest'] = { order: placed.id, amount: placed.total };
  const payment = await call<S['Payment']>(base, 'POST', '/api/payments/', pay, access);
  if (payment.status !== 'pending') throw new Error('bad payment');

  const patch: S['PatchedUserProfileRequest'] = { is_student: true, github: 'https://github.com/alice' };
  const profile = await call<S['UserProfileDetail']>(base, 'PATCH', '/api/profile/', patch, access);
  const educations: S['Education'][] = profile.educations;
  console.log(JSON.stringify({ user: me.id, order: placed.id, payment: payment.id,
                               is_student: profile.is_student, educations: educations.length }));
}

declare const process: { argv: string[] };
main(process.argv[2], process.argv[3]).catch((e: unknown) => {
  console.log(String(e));
  throw e;
});
