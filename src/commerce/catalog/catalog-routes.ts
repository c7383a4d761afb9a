/**
 * /v1/products and /v1/skus: public catalog reads, seller/admin writes.
 */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { currentUser, requirePermission } from '../../auth/auth-hooks.js';
import { ErrorRef } from '../../platform/http/openapi.js';
import {
  CreateProductBody,
  CreateSkuBody,
  ListProductsQuery,
  ProductIdParams,
  ProductPageSchema,
  ProductSchema,
  SkuIdParams,
  SkuSchema,
  UpdateProductBody,
  UpdateSkuBody,
} from './catalog-schemas.js';
import type { CatalogService } from './catalog-service.js';

export interface CatalogRoutesOptions {
  /** The catalog service the routes delegate to. */
  catalog: CatalogService;
}

/** Anonymous or signed in; a token only widens what you see (your own inactive products). */
const optionalBearer: Array<Record<string, string[]>> = [{}, { bearer: [] }];

export async function catalogRoutes(fastify: FastifyInstance, opts: CatalogRoutesOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { catalog } = opts;
  fastify.addSchema(SkuSchema);
  fastify.addSchema(ProductSchema);
  fastify.addSchema(ProductPageSchema);

  app.post(
    '/v1/products',
    {
      preValidation: requirePermission('catalog:write'),
      schema: {
        tags: ['catalog'],
        summary: 'Create a product with its SKUs (streamer/admin; you become the seller)',
        security: [{ bearer: [] }],
        body: CreateProductBody,
        response: {
          201: Type.Ref(ProductSchema),
          400: ErrorRef,
          401: ErrorRef,
          403: ErrorRef,
          409: ErrorRef,
        },
      },
    },
    async (request, reply) =>
      reply.status(201).send(await catalog.createProduct(currentUser(request), request.body)),
  );

  app.get(
    '/v1/products',
    {
      schema: {
        tags: ['catalog'],
        summary: 'List products, newest first, with filters and cursor paging',
        security: optionalBearer,
        querystring: ListProductsQuery,
        response: { 200: Type.Ref(ProductPageSchema), 400: ErrorRef, 401: ErrorRef },
      },
    },
    async (request) => catalog.listProducts(request.query, request.user),
  );

  app.get(
    '/v1/products/:id',
    {
      schema: {
        tags: ['catalog'],
        summary: 'A product with its SKUs',
        security: optionalBearer,
        params: ProductIdParams,
        response: { 200: Type.Ref(ProductSchema), 400: ErrorRef, 401: ErrorRef, 404: ErrorRef },
      },
    },
    async (request) => catalog.getProduct(request.params.id, request.user),
  );

  app.patch(
    '/v1/products/:id',
    {
      preValidation: requirePermission('catalog:write'),
      schema: {
        tags: ['catalog'],
        summary: 'Edit or (de)activate a product (its seller or an admin)',
        security: [{ bearer: [] }],
        params: ProductIdParams,
        body: UpdateProductBody,
        response: {
          200: Type.Ref(ProductSchema),
          400: ErrorRef,
          401: ErrorRef,
          403: ErrorRef,
          404: ErrorRef,
        },
      },
    },
    async (request) => catalog.updateProduct(currentUser(request), request.params.id, request.body),
  );

  app.post(
    '/v1/products/:id/skus',
    {
      preValidation: requirePermission('catalog:write'),
      schema: {
        tags: ['catalog'],
        summary: 'Add a SKU to a product (its seller or an admin)',
        security: [{ bearer: [] }],
        params: ProductIdParams,
        body: CreateSkuBody,
        response: {
          201: Type.Ref(SkuSchema),
          400: ErrorRef,
          401: ErrorRef,
          403: ErrorRef,
          404: ErrorRef,
          409: ErrorRef,
        },
      },
    },
    async (request, reply) =>
      reply.status(201).send(await catalog.addSku(currentUser(request), request.params.id, request.body)),
  );

  app.patch(
    '/v1/skus/:id',
    {
      preValidation: requirePermission('catalog:write'),
      schema: {
        tags: ['catalog'],
        summary: "Change a SKU's name, price, stock or active flag (its seller or an admin)",
        security: [{ bearer: [] }],
        params: SkuIdParams,
        body: UpdateSkuBody,
        response: {
          200: Type.Ref(SkuSchema),
          400: ErrorRef,
          401: ErrorRef,
          403: ErrorRef,
          404: ErrorRef,
        },
      },
    },
    async (request) => catalog.updateSku(currentUser(request), request.params.id, request.body),
  );
}
