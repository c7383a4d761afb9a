/**
 * Catalog: service contract against embedded PGlite and real PostgreSQL, then
 * the HTTP API through the app.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Migration, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authMigrations } from '../src/auth/auth-migrations.js';
import type { AuthTables } from '../src/auth/auth-tables.js';
import type { AuthUser } from '../src/auth/permissions.js';
import { buildCartLines } from '../src/commerce/catalog/cart.js';
import { catalogMigrations } from '../src/commerce/catalog/catalog-migrations.js';
import { CatalogService, type NewProduct, type Product } from '../src/commerce/catalog/catalog-service.js';
import type { CatalogTables } from '../src/commerce/catalog/catalog-tables.js';
import { type DbHandle, openDb } from '../src/platform/db/db.js';
import { createTestApp, type TestApp } from './support/app.js';
import { actor, failure } from './support/failures.js';
import { createTestDatabase, probePostgres } from './support/postgres.js';
import { describeWithService } from './support/real-services.js';

const testMigrations: Record<string, Migration> = { ...authMigrations, ...catalogMigrations };
/** Wider than the catalog's tables on purpose: the service must accept any database that includes them. */
type TestDb = AuthTables & CatalogTables;

let seq = 0;
function newProduct(over: Partial<NewProduct> = {}): NewProduct {
  seq++;
  return {
    title: `Tee ${seq}`,
    category: 'Apparel',
    currency: 'EUR',
    images: ['https://cdn.example.com/tee.jpg'],
    skus: [
      { code: `T${seq}-RED-M`, name: 'Red / M', priceMinor: 2500, stock: 10 },
      { code: `T${seq}-BLU-L`, name: 'Blue / L', priceMinor: 2700, stock: 5 },
    ],
    ...over,
  };
}

interface Target {
  open: () => Promise<DbHandle<TestDb>>;
  cleanup: () => Promise<void>;
}

function catalogContract(makeTarget: () => Promise<Target>) {
  let target: Target;
  let handle: DbHandle<TestDb>;
  let catalog: CatalogService;
  const seller = actor('streamer');
  const rival = actor('streamer');
  const admin = actor('admin');
  const viewer = actor('viewer');

  beforeAll(async () => {
    target = await makeTarget();
    handle = await target.open();
    catalog = new CatalogService(handle.db);
  });
  afterAll(async () => {
    await handle?.close();
    await target?.cleanup();
  });

  it('creates a product with its SKUs in one go and reads it back', async () => {
    const p = await catalog.createProduct(
      seller,
      newProduct({ title: '  Organic tee ', description: 'Soft' }),
    );
    expect(p).toMatchObject({
      sellerId: seller.id,
      title: 'Organic tee',
      description: 'Soft',
      category: 'apparel',
      currency: 'EUR',
      active: true,
      images: ['https://cdn.example.com/tee.jpg'],
    });
    expect(p.skus.map((s) => s.name)).toEqual(['Blue / L', 'Red / M']);
    expect(p.skus.every((s) => s.productId === p.id && s.active)).toBe(true);
    expect(await catalog.getProduct(p.id)).toEqual(p);
  });

  it('refuses a taken SKU code and rolls the whole product back', async () => {
    const first = await catalog.createProduct(seller, newProduct());
    const taken = first.skus[0]!.code;
    const title = `rollback-${randomUUID()}`;
    const err = await failure(
      catalog.createProduct(
        seller,
        newProduct({
          title,
          skus: [
            { code: `NEW-${seq}`, name: 'a', priceMinor: 1, stock: 1 },
            { code: taken, name: 'b', priceMinor: 1, stock: 1 },
          ],
        }),
      ),
    );
    expect(err).toEqual({ code: 'SKU_CODE_TAKEN', details: { codes: [taken] } });
    const left = await handle.db.selectFrom('products').select('id').where('title', '=', title).execute();
    expect(left).toEqual([]);
    const dup = await failure(
      catalog.createProduct(
        seller,
        newProduct({
          skus: [
            { code: 'SAME', name: 'a', priceMinor: 1, stock: 1 },
            { code: 'SAME', name: 'b', priceMinor: 1, stock: 1 },
          ],
        }),
      ),
    );
    expect(dup.code).toBe('SKU_CODE_TAKEN');
    expect(
      (await failure(catalog.addSku(seller, first.id, { code: taken, name: 'x', priceMinor: 1, stock: 0 })))
        .code,
    ).toBe('SKU_CODE_TAKEN');
  });

  it('checks permissions: catalog:write to create, owner or admin to edit', async () => {
    expect((await failure(catalog.createProduct(viewer, newProduct()))).code).toBe('FORBIDDEN');
    const p = await catalog.createProduct(seller, newProduct());
    expect((await failure(catalog.updateProduct(rival, p.id, { title: 'mine now' }))).code).toBe('FORBIDDEN');
    expect(
      (await failure(catalog.addSku(rival, p.id, { code: `R${seq}`, name: 'x', priceMinor: 1, stock: 1 })))
        .code,
    ).toBe('FORBIDDEN');
    expect((await failure(catalog.updateSku(rival, p.skus[0]!.id, { priceMinor: 1 }))).code).toBe(
      'FORBIDDEN',
    );
    expect((await failure(catalog.deactivateProduct(rival, p.id))).code).toBe('FORBIDDEN');
    // an owner who lost the streamer role cannot edit either
    expect(
      (await failure(catalog.updateProduct({ ...seller, roles: ['viewer'] }, p.id, { title: 'x' }))).code,
    ).toBe('FORBIDDEN');
    const byAdmin = await catalog.updateProduct(admin, p.id, {
      title: 'Fixed by admin',
      category: ' SHOES ',
    });
    expect(byAdmin).toMatchObject({ title: 'Fixed by admin', category: 'shoes', sellerId: seller.id });
    expect(new Date(byAdmin.updatedAt).getTime()).toBeGreaterThanOrEqual(new Date(p.updatedAt).getTime());
    expect((await failure(catalog.updateProduct(seller, randomUUID(), { title: 'x' }))).code).toBe(
      'PRODUCT_NOT_FOUND',
    );
  });

  it('adds and updates SKUs: price, stock, name, active, atomic stockDelta', async () => {
    const p = await catalog.createProduct(seller, newProduct());
    const sku = await catalog.addSku(seller, p.id, {
      code: `ADD-${seq}`,
      name: ' Green / S ',
      priceMinor: 0,
      stock: 0,
    });
    expect(sku).toMatchObject({ name: 'Green / S', priceMinor: 0, stock: 0, active: true, productId: p.id });
    expect(
      await catalog.updateSku(seller, sku.id, { priceMinor: 1999, stock: 7, name: 'Green / M' }),
    ).toMatchObject({
      priceMinor: 1999,
      stock: 7,
      name: 'Green / M',
    });
    expect((await catalog.updateSku(seller, sku.id, { stockDelta: 3 })).stock).toBe(10);
    expect((await catalog.updateSku(seller, sku.id, { stockDelta: -10 })).stock).toBe(0);
    const under = await failure(catalog.updateSku(seller, sku.id, { stockDelta: -1 }));
    expect(under).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'stockDelta', stock: 0 } });
    expect(
      (await failure(catalog.updateSku(seller, sku.id, { stock: 1, stockDelta: 1 }))).details.field,
    ).toBe('stockDelta');
    expect((await failure(catalog.updateSku(seller, sku.id, { stock: -1 }))).details.field).toBe('stock');
    expect((await failure(catalog.updateSku(seller, sku.id, { priceMinor: 1.5 }))).details.field).toBe(
      'priceMinor',
    );
    expect((await failure(catalog.updateSku(seller, randomUUID(), { stock: 1 }))).code).toBe('SKU_NOT_FOUND');
    expect((await catalog.updateSku(admin, sku.id, { active: false })).active).toBe(false);
    expect((await catalog.getSku(sku.id)).active).toBe(false);
  });

  it('never lets concurrent stockDelta take stock below zero', async () => {
    const p = await catalog.createProduct(seller, newProduct());
    const sku = p.skus.find((s) => s.stock === 10)!;
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, () => catalog.updateSku(seller, sku.id, { stockDelta: -1 })),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(10);
    expect((await catalog.getSku(sku.id)).stock).toBe(0);
  });

  it('the database itself refuses negative stock and price', async () => {
    const p = await catalog.createProduct(seller, newProduct());
    const id = p.skus[0]!.id;
    await expect(
      handle.db.updateTable('skus').set({ stock: -1 }).where('id', '=', id).execute(),
    ).rejects.toThrow(/skus_stock_nonnegative/);
    await expect(
      handle.db.updateTable('skus').set({ price_minor: -1 }).where('id', '=', id).execute(),
    ).rejects.toThrow(/skus_price_nonnegative/);
  });

  it('validates inputs that bypass HTTP schemas', async () => {
    expect(
      (await failure(catalog.createProduct(seller, newProduct({ currency: 'eur' })))).details.field,
    ).toBe('currency');
    expect((await failure(catalog.createProduct(seller, newProduct({ skus: [] })))).details.field).toBe(
      'skus',
    );
    expect(
      (
        await failure(
          catalog.createProduct(seller, newProduct({ images: Array(11).fill('https://x.io/a.jpg') })),
        )
      ).details.field,
    ).toBe('images');
    expect(
      (await failure(catalog.createProduct(seller, newProduct({ images: ['ftp://x/a.jpg'] })))).details.field,
    ).toBe('images.0');
    const negative = newProduct();
    negative.skus[1]!.priceMinor = -5;
    expect((await failure(catalog.createProduct(seller, negative))).details.field).toBe('skus.1.priceMinor');
  });

  it('hides inactive products and SKUs from everyone but the seller and admins', async () => {
    const p = await catalog.createProduct(seller, newProduct());
    await catalog.updateSku(seller, p.skus[0]!.id, { active: false });
    expect((await catalog.getProduct(p.id)).skus).toHaveLength(1);
    expect((await catalog.getProduct(p.id, seller)).skus).toHaveLength(2);
    const off = await catalog.deactivateProduct(seller, p.id);
    expect(off.active).toBe(false);
    expect((await failure(catalog.getProduct(p.id))).code).toBe('PRODUCT_NOT_FOUND');
    expect((await failure(catalog.getProduct(p.id, rival))).code).toBe('PRODUCT_NOT_FOUND');
    expect((await catalog.getProduct(p.id, seller)).active).toBe(false);
    expect((await catalog.getProduct(p.id, admin)).skus).toHaveLength(2);
    const ids = async (viewerUser: AuthUser | null, active?: boolean) =>
      (
        await catalog.listProducts(
          { sellerId: seller.id, limit: 100, ...(active === undefined ? {} : { active }) },
          viewerUser,
        )
      ).items.map((x) => x.id);
    expect(await ids(null)).not.toContain(p.id);
    expect(await ids(rival)).not.toContain(p.id);
    expect(await ids(null, false)).toEqual([]);
    expect(await ids(seller)).toContain(p.id);
    expect(await ids(seller, false)).toEqual([p.id]);
    expect(await ids(admin, false)).toEqual([p.id]);
    expect(await ids(admin, true)).not.toContain(p.id);
    const again = await catalog.updateProduct(seller, p.id, { active: true });
    expect(again.active).toBe(true);
    expect(await ids(null)).toContain(p.id);
  });

  it('pages with an opaque cursor: stable order, no gaps or repeats, ties broken by id', async () => {
    const pager = actor('streamer');
    const made: Product[] = [];
    for (let i = 0; i < 9; i++)
      made.push(await catalog.createProduct(pager, newProduct({ category: 'paging' })));
    // Rows created in one transaction share created_at exactly: the id must break the tie.
    const tied = new Date('2030-01-01T00:00:00.123456Z');
    const tieIds = Array.from({ length: 6 }, () => randomUUID());
    await handle.db
      .insertInto('products')
      .values(
        tieIds.map((id) => ({
          id,
          seller_id: pager.id,
          title: 'tie',
          category: 'paging',
          currency: 'EUR',
          updated_at: tied,
          created_at: sql<Date>`'2030-01-01 00:00:00.123456+00'::timestamptz`,
        })),
      )
      .execute();
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await catalog.listProducts({
        sellerId: pager.id,
        limit: 4,
        ...(cursor ? { cursor } : {}),
      });
      seen.push(...page.items.map((p) => p.id));
      cursor = page.nextCursor ?? undefined;
      pages++;
      if (cursor) expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    } while (cursor);
    expect(pages).toBe(4);
    const expected = [...[...tieIds].sort().reverse(), ...made.map((p) => p.id).reverse()];
    expect(seen).toEqual(expected);
    expect((await failure(catalog.listProducts({ cursor: 'not-a-cursor' }))).details.field).toBe('cursor');
    const forged = Buffer.from(JSON.stringify(['x; drop table', randomUUID()])).toString('base64url');
    expect((await failure(catalog.listProducts({ cursor: forged }))).code).toBe('VALIDATION_FAILED');
    expect((await failure(catalog.listProducts({ limit: 101 }))).details.field).toBe('limit');
  });

  it('filters by category, seller, title text and price range', async () => {
    const shop = actor('streamer');
    const mk = (title: string, category: string, prices: number[]) =>
      catalog.createProduct(
        shop,
        newProduct({
          title,
          category,
          skus: prices.map((priceMinor, i) => ({
            code: `F${seq}-${i}-${randomUUID().slice(0, 8)}`,
            name: `v${i}`,
            priceMinor,
            stock: 1,
          })),
        }),
      );
    const cheap = await mk('Cheap 50% socks', 'Socks', [500]);
    const mid = await mk('Mid hoodie', 'hoodies', [3000, 3500]);
    const dear = await mk('Dear coat', 'coats', [20000]);
    const list = async (q: Parameters<CatalogService['listProducts']>[0]) =>
      (await catalog.listProducts({ sellerId: shop.id, ...q })).items.map((p) => p.title);
    expect(await list({})).toEqual(['Dear coat', 'Mid hoodie', 'Cheap 50% socks']);
    expect(await list({ category: 'SOCKS' })).toEqual(['Cheap 50% socks']);
    expect(await list({ q: 'HOOD' })).toEqual(['Mid hoodie']);
    expect(await list({ q: '50%' })).toEqual(['Cheap 50% socks']);
    expect(await list({ q: '%' })).toEqual(['Cheap 50% socks']);
    expect(await list({ q: '_' })).toEqual([]);
    expect(await list({ minPriceMinor: 3200 })).toEqual(['Dear coat', 'Mid hoodie']);
    expect(await list({ maxPriceMinor: 3000 })).toEqual(['Mid hoodie', 'Cheap 50% socks']);
    expect(await list({ minPriceMinor: 3100, maxPriceMinor: 3400 })).toEqual([]);
    expect(await list({ minPriceMinor: 3000, maxPriceMinor: 3000 })).toEqual(['Mid hoodie']);
    // inactive SKUs do not count towards the price filter
    await catalog.updateSku(shop, dear.skus[0]!.id, { active: false });
    expect(await list({ minPriceMinor: 10000 })).toEqual([]);
    expect((await catalog.listProducts({ sellerId: randomUUID() })).items).toEqual([]);
    expect(cheap.id).not.toBe(mid.id);
  });

  it('builds priced cart lines and refuses what cannot be bought', async () => {
    const a = await catalog.createProduct(seller, newProduct({ category: 'Shoes' }));
    const b = await catalog.createProduct(seller, newProduct());
    const usd = await catalog.createProduct(seller, newProduct({ currency: 'USD' }));
    const [a1, a2] = a.skus;
    const cart = await buildCartLines(handle.db, [
      { skuId: a1!.id, quantity: 2 },
      { skuId: b.skus[0]!.id, quantity: 1 },
      { skuId: a1!.id, quantity: 1 },
    ]);
    expect(cart.currency).toBe('EUR');
    expect(cart.lines).toHaveLength(2);
    expect(cart.lines[0]).toMatchObject({
      productId: a.id,
      skuId: a1!.id,
      category: 'shoes',
      quantity: 3,
      unitPriceMinor: a1!.priceMinor,
      lineTotalMinor: 3 * a1!.priceMinor,
      sellerId: seller.id,
      skuCode: a1!.code,
    });
    expect(cart.subtotalMinor).toBe(3 * a1!.priceMinor + b.skus[0]!.priceMinor);
    expect(await failure(buildCartLines(handle.db, []))).toMatchObject({ details: { field: 'items' } });
    expect(await failure(buildCartLines(handle.db, [{ skuId: a1!.id, quantity: 0 }]))).toEqual({
      code: 'VALIDATION_FAILED',
      details: { field: 'items.0.quantity' },
    });
    expect((await failure(buildCartLines(handle.db, [{ skuId: a1!.id, quantity: 1.5 }]))).code).toBe(
      'VALIDATION_FAILED',
    );
    const ghost = randomUUID();
    expect(await failure(buildCartLines(handle.db, [{ skuId: ghost, quantity: 1 }]))).toEqual({
      code: 'SKU_NOT_FOUND',
      details: { skuId: ghost },
    });
    expect((await failure(buildCartLines(handle.db, [{ skuId: 'nope', quantity: 1 }]))).code).toBe(
      'SKU_NOT_FOUND',
    );
    expect(
      await failure(
        buildCartLines(handle.db, [
          { skuId: a1!.id, quantity: 1 },
          { skuId: usd.skus[0]!.id, quantity: 1 },
        ]),
      ),
    ).toMatchObject({ code: 'CURRENCY_MISMATCH', details: { currencies: ['EUR', 'USD'] } });
    await catalog.updateSku(seller, a2!.id, { active: false });
    expect(await failure(buildCartLines(handle.db, [{ skuId: a2!.id, quantity: 1 }]))).toEqual({
      code: 'PRODUCT_INACTIVE',
      details: { skuId: a2!.id, productId: a.id },
    });
    await catalog.deactivateProduct(seller, b.id);
    expect((await failure(buildCartLines(handle.db, [{ skuId: b.skus[0]!.id, quantity: 1 }]))).code).toBe(
      'PRODUCT_INACTIVE',
    );
    // locking variant inside a transaction, through the service
    const locked = await handle.db
      .transaction()
      .execute(async (trx) => buildCartLines(trx, [{ skuId: a1!.id, quantity: 1 }], { lock: true }));
    expect(locked.lines[0]!.stock).toBe(a1!.stock);
    expect((await catalog.priceCart([{ skuId: a1!.id, quantity: 4 }])).subtotalMinor).toBe(
      4 * a1!.priceMinor,
    );
  });
}

describe('catalog service (pglite)', () => {
  catalogContract(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lcs-catalog-'));
    return {
      open: () => openDb<TestDb>({ dataDir: dir, migrations: testMigrations }),
      cleanup: async () => rmSync(dir, { recursive: true, force: true }),
    };
  });
});

await describeWithService('catalog service (postgres)', probePostgres, () => {
  catalogContract(async () => {
    const { url, drop } = await createTestDatabase();
    return {
      open: () => openDb<TestDb>({ url, dataDir: '/nonexistent', migrations: testMigrations }),
      cleanup: drop,
    };
  });
});

describe('catalog API', () => {
  let t: TestApp;
  let streamer: { id: string; token: string };
  let rival: { id: string; token: string };
  let admin: { id: string; token: string };
  let viewer: { id: string; token: string };
  beforeAll(async () => {
    t = await createTestApp();
    [streamer, rival, admin, viewer] = [
      await t.login(['streamer']),
      await t.login(['streamer']),
      await t.login(['admin']),
      await t.login(['viewer']),
    ];
  });
  afterAll(async () => t?.close());

  const req = (method: 'GET' | 'POST' | 'PATCH', url: string, body?: unknown, token?: string) =>
    t.app.inject({
      method,
      url,
      ...(body === undefined ? {} : { payload: body as object }),
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });

  const body = (over: Record<string, unknown> = {}) => ({
    title: 'Live tee',
    category: 'apparel',
    currency: 'EUR',
    images: ['https://cdn.example.com/a.jpg'],
    skus: [{ code: `API-${randomUUID().slice(0, 8)}`, name: 'M', priceMinor: 1999, stock: 3 }],
    ...over,
  });

  it('creates, reads and lists products', async () => {
    const created = await req('POST', '/v1/products', body(), streamer.token);
    expect(created.statusCode).toBe(201);
    const p = created.json();
    expect(p).toMatchObject({
      sellerId: streamer.id,
      currency: 'EUR',
      skus: [{ priceMinor: 1999, stock: 3 }],
    });
    const got = await req('GET', `/v1/products/${p.id}`);
    expect(got.statusCode).toBe(200);
    expect(got.json()).toEqual(p);
    const list = await req('GET', `/v1/products?sellerId=${streamer.id}&limit=1&category=APPAREL`);
    expect(list.statusCode).toBe(200);
    expect(list.json().items.map((x: Product) => x.id)).toEqual([p.id]);
    expect(list.json().nextCursor).toBeNull();
    const filtered = await req('GET', `/v1/products?minPriceMinor=2000&sellerId=${streamer.id}`);
    expect(filtered.json().items).toEqual([]);
  });

  it('rejects bad input with 400 VALIDATION_FAILED naming the field', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [body({ skus: [{ code: 'NEG-P', name: 'x', priceMinor: -1, stock: 1 }] }), 'skus.0.priceMinor'],
      [body({ skus: [{ code: 'NEG-S', name: 'x', priceMinor: 1, stock: -1 }] }), 'skus.0.stock'],
      [body({ skus: [{ code: 'STR-P', name: 'x', priceMinor: '100', stock: 1 }] }), 'skus.0.priceMinor'],
      [body({ currency: 'eur' }), 'currency'],
      [body({ currency: 'EURO' }), 'currency'],
      [body({ color: 'red' }), 'color'],
      [body({ skus: [{ code: 'X-1', name: 'x', priceMinor: 1, stock: 1, weight: 3 }] }), 'skus.0.weight'],
      [body({ skus: [] }), 'skus'],
      [body({ images: ['not a url'] }), 'images.0'],
      [body({ images: Array(11).fill('https://x.io/a.jpg') }), 'images'],
      [body({ title: undefined }), 'title'],
    ];
    for (const [payload, field] of cases) {
      const res = await req('POST', '/v1/products', payload, streamer.token);
      expect(res.statusCode, field).toBe(400);
      expect(res.json().code, field).toBe('VALIDATION_FAILED');
      expect(res.json().details.field, JSON.stringify(res.json())).toBe(field);
    }
  });

  it('refuses viewers (403), anonymous callers (401) and foreign sellers (403); admins may edit', async () => {
    const asViewer = await req('POST', '/v1/products', body(), viewer.token);
    expect(asViewer.statusCode).toBe(403);
    expect(asViewer.json()).toMatchObject({ code: 'FORBIDDEN', details: { permission: 'catalog:write' } });
    expect((await req('POST', '/v1/products', body())).statusCode).toBe(401);
    const p = (await req('POST', '/v1/products', body(), streamer.token)).json();
    const foreign = await req('PATCH', `/v1/products/${p.id}`, { title: 'stolen' }, rival.token);
    expect(foreign.statusCode).toBe(403);
    expect(foreign.json().code).toBe('FORBIDDEN');
    const foreignSku = await req('PATCH', `/v1/skus/${p.skus[0].id}`, { priceMinor: 1 }, rival.token);
    expect(foreignSku.statusCode).toBe(403);
    const foreignAdd = await req(
      'POST',
      `/v1/products/${p.id}/skus`,
      { code: `R-${randomUUID().slice(0, 6)}`, name: 'x', priceMinor: 1, stock: 1 },
      rival.token,
    );
    expect(foreignAdd.statusCode).toBe(403);
    const byAdmin = await req('PATCH', `/v1/products/${p.id}`, { title: 'Admin fix' }, admin.token);
    expect(byAdmin.statusCode).toBe(200);
    expect(byAdmin.json().title).toBe('Admin fix');
  });

  it('adds and edits SKUs; refuses taken codes, unknown SKUs and bad patches', async () => {
    const p = (await req('POST', '/v1/products', body(), streamer.token)).json();
    const code = `ADD-${randomUUID().slice(0, 8)}`;
    const added = await req(
      'POST',
      `/v1/products/${p.id}/skus`,
      { code, name: 'L', priceMinor: 2100, stock: 0 },
      streamer.token,
    );
    expect(added.statusCode).toBe(201);
    expect(added.json()).toMatchObject({ code, productId: p.id, stock: 0 });
    const again = await req(
      'POST',
      `/v1/products/${p.id}/skus`,
      { code, name: 'L', priceMinor: 1, stock: 0 },
      streamer.token,
    );
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ code: 'SKU_CODE_TAKEN', details: { codes: [code] } });
    const patched = await req(
      'PATCH',
      `/v1/skus/${added.json().id}`,
      { stockDelta: 5, priceMinor: 2000 },
      streamer.token,
    );
    expect(patched.json()).toMatchObject({ stock: 5, priceMinor: 2000 });
    expect(
      (await req('PATCH', `/v1/skus/${added.json().id}`, { stock: -1 }, streamer.token)).statusCode,
    ).toBe(400);
    expect((await req('PATCH', `/v1/skus/${added.json().id}`, {}, streamer.token)).statusCode).toBe(400);
    expect(
      (await req('PATCH', `/v1/skus/${added.json().id}`, { code: 'X' }, streamer.token)).json().details.field,
    ).toBe('code');
    const ghost = await req('PATCH', `/v1/skus/${randomUUID()}`, { stock: 1 }, streamer.token);
    expect(ghost.statusCode).toBe(404);
    expect(ghost.json().code).toBe('SKU_NOT_FOUND');
    const ghostProduct = await req(
      'POST',
      `/v1/products/${randomUUID()}/skus`,
      { code: 'GHOST-1', name: 'x', priceMinor: 1, stock: 1 },
      streamer.token,
    );
    expect(ghostProduct.json().code).toBe('PRODUCT_NOT_FOUND');
  });

  it('deactivation hides a product from shoppers but not from its seller', async () => {
    const p = (await req('POST', '/v1/products', body(), streamer.token)).json();
    const off = await req('PATCH', `/v1/products/${p.id}`, { active: false }, streamer.token);
    expect(off.json().active).toBe(false);
    expect((await req('GET', `/v1/products/${p.id}`)).statusCode).toBe(404);
    expect((await req('GET', `/v1/products/${p.id}`, undefined, viewer.token)).json().code).toBe(
      'PRODUCT_NOT_FOUND',
    );
    expect((await req('GET', `/v1/products/${p.id}`, undefined, streamer.token)).statusCode).toBe(200);
    const mine = await req(
      'GET',
      `/v1/products?active=false&sellerId=${streamer.id}`,
      undefined,
      streamer.token,
    );
    expect(mine.json().items.map((x: Product) => x.id)).toContain(p.id);
    const publicList = await req('GET', `/v1/products?active=false&sellerId=${streamer.id}`);
    expect(publicList.json().items).toEqual([]);
  });

  it('answers 404 for unknown products and 400 for malformed ids, queries and cursors', async () => {
    const ghost = await req('GET', `/v1/products/${randomUUID()}`);
    expect(ghost.statusCode).toBe(404);
    expect(ghost.json().code).toBe('PRODUCT_NOT_FOUND');
    expect((await req('GET', '/v1/products/not-a-uuid')).statusCode).toBe(400);
    expect((await req('GET', '/v1/products?limit=0')).statusCode).toBe(400);
    expect((await req('GET', '/v1/products?limit=101')).statusCode).toBe(400);
    expect((await req('GET', '/v1/products?minPriceMinor=-1')).statusCode).toBe(400);
    expect((await req('GET', '/v1/products?sort=price')).json().details.field).toBe('sort');
    const badCursor = await req('GET', '/v1/products?cursor=garbage');
    expect(badCursor.statusCode).toBe(400);
    expect(badCursor.json().details.field).toBe('cursor');
  });

  it('documents every catalog route in OpenAPI with examples and error responses', async () => {
    const doc = (await t.app.inject('/docs/json')).json();
    const routes: Array<[string, string]> = [
      ['/v1/products', 'post'],
      ['/v1/products', 'get'],
      ['/v1/products/{id}', 'get'],
      ['/v1/products/{id}', 'patch'],
      ['/v1/products/{id}/skus', 'post'],
      ['/v1/skus/{id}', 'patch'],
    ];
    for (const [path, method] of routes) {
      const op = doc.paths[path]?.[method];
      expect(op, `${method} ${path}`).toBeDefined();
      expect(op.tags).toEqual(['catalog']);
      expect(
        Object.keys(op.responses).some((s) => s.startsWith('4')),
        `${method} ${path}`,
      ).toBe(true);
    }
    expect(JSON.stringify(doc.paths['/v1/products'].post.requestBody)).toContain('examples');
    expect(doc.components.schemas.Product.examples).toBeDefined();
  });
});
