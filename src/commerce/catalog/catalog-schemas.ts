import { Type } from '@sinclair/typebox';
import { CURRENCY_PATTERN, MAX_IMAGES, MAX_INT32, SKU_CODE_PATTERN } from './catalog-service.js';

const Uuid = Type.String({ format: 'uuid' });
const DateTime = Type.String({ format: 'date-time' });

export const MinorUnits = (description: string) =>
  Type.Integer({ minimum: 0, maximum: MAX_INT32, description, examples: [2499] });
const Stock = Type.Integer({ minimum: 0, maximum: MAX_INT32, description: 'Units on hand', examples: [50] });
const Currency = Type.String({
  pattern: CURRENCY_PATTERN,
  description: 'ISO 4217 code, upper case',
  examples: ['EUR'],
});
const SkuCode = Type.String({
  pattern: SKU_CODE_PATTERN,
  description: 'Merchant code, unique across the catalog',
  examples: ['TEE-RED-M'],
});
const SkuName = Type.String({ minLength: 1, maxLength: 100, examples: ['Red / M'] });
const Title = Type.String({ minLength: 1, maxLength: 200, examples: ['Organic cotton tee'] });
const Description = Type.String({ maxLength: 5000, examples: ['Soft, heavy, made to last.'] });
const Category = Type.String({
  minLength: 1,
  maxLength: 64,
  description: 'Stored lower-cased; filters and coupon restrictions compare it case-insensitively',
  examples: ['apparel'],
});
const Images = Type.Array(
  Type.String({
    format: 'uri',
    pattern: '^https?://',
    maxLength: 2048,
    examples: ['https://cdn.example.com/tee.jpg'],
  }),
  { maxItems: MAX_IMAGES, description: `Image URLs (http or https), at most ${MAX_IMAGES}` },
);

const skuExample = {
  id: '7d3c1f80-2f4e-4a55-9d7f-2b4f1a0c9e11',
  productId: '0b6f4c0e-3d0f-4a8e-9a1e-5c2d7b9f1a22',
  code: 'TEE-RED-M',
  name: 'Red / M',
  priceMinor: 2499,
  stock: 50,
  active: true,
  createdAt: '2025-05-01T12:00:00.000Z',
};

export const SkuSchema = Type.Object(
  {
    id: Uuid,
    productId: Uuid,
    code: Type.String(),
    name: Type.String(),
    priceMinor: Type.Integer({ description: 'Price in minor units of the product currency' }),
    stock: Type.Integer(),
    active: Type.Boolean(),
    createdAt: DateTime,
  },
  { $id: 'Sku', description: 'A purchasable variant of a product', examples: [skuExample] },
);

const productExample = {
  id: '0b6f4c0e-3d0f-4a8e-9a1e-5c2d7b9f1a22',
  sellerId: '5a1e2c3d-4b5f-4e6a-8b7c-9d0e1f2a3b44',
  title: 'Organic cotton tee',
  description: 'Soft, heavy, made to last.',
  category: 'apparel',
  images: ['https://cdn.example.com/tee.jpg'],
  currency: 'EUR',
  active: true,
  createdAt: '2025-05-01T12:00:00.000Z',
  updatedAt: '2025-05-01T12:00:00.000Z',
  skus: [skuExample],
};

export const ProductSchema = Type.Object(
  {
    id: Uuid,
    sellerId: Uuid,
    title: Type.String(),
    description: Type.String(),
    category: Type.String(),
    images: Type.Array(Type.String()),
    currency: Type.String(),
    active: Type.Boolean(),
    createdAt: DateTime,
    updatedAt: DateTime,
    skus: Type.Array(Type.Ref(SkuSchema), {
      description: 'Active SKUs; the seller and admins also see inactive ones',
    }),
  },
  { $id: 'Product', examples: [productExample] },
);

export const ProductPageSchema = Type.Object(
  {
    items: Type.Array(Type.Ref(ProductSchema)),
    nextCursor: Type.Union([Type.String(), Type.Null()], {
      description: 'Pass as `cursor` for the next page; null on the last page',
    }),
  },
  { $id: 'ProductPage', examples: [{ items: [productExample], nextCursor: null }] },
);

export const CreateSkuBody = Type.Object(
  {
    code: SkuCode,
    name: SkuName,
    priceMinor: MinorUnits('Price in minor units of the product currency (cents for EUR)'),
    stock: Stock,
    active: Type.Optional(Type.Boolean({ default: true })),
  },
  {
    additionalProperties: false,
    examples: [{ code: 'TEE-BLUE-L', name: 'Blue / L', priceMinor: 2499, stock: 30 }],
  },
);

export const CreateProductBody = Type.Object(
  {
    title: Title,
    description: Type.Optional(Description),
    category: Category,
    images: Type.Optional(Images),
    currency: Currency,
    skus: Type.Array(CreateSkuBody, { minItems: 1, maxItems: 100 }),
  },
  {
    additionalProperties: false,
    examples: [
      {
        title: 'Organic cotton tee',
        description: 'Soft, heavy, made to last.',
        category: 'apparel',
        images: ['https://cdn.example.com/tee.jpg'],
        currency: 'EUR',
        skus: [
          { code: 'TEE-RED-M', name: 'Red / M', priceMinor: 2499, stock: 50 },
          { code: 'TEE-RED-L', name: 'Red / L', priceMinor: 2499, stock: 20 },
        ],
      },
    ],
  },
);

export const UpdateProductBody = Type.Object(
  {
    title: Type.Optional(Title),
    description: Type.Optional(Description),
    category: Type.Optional(Category),
    images: Type.Optional(Images),
    active: Type.Optional(
      Type.Boolean({ description: 'false deactivates: hidden from shoppers, no new orders' }),
    ),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    examples: [{ title: 'Organic cotton tee (2025)' }, { active: false }],
  },
);

export const UpdateSkuBody = Type.Object(
  {
    name: Type.Optional(SkuName),
    priceMinor: Type.Optional(MinorUnits('New price in minor units')),
    stock: Type.Optional(
      Type.Integer({ ...Stock, description: 'Absolute stock; prefer stockDelta while selling' }),
    ),
    stockDelta: Type.Optional(
      Type.Integer({
        minimum: -MAX_INT32,
        maximum: MAX_INT32,
        description:
          'Atomic adjustment (restock +n, write-off -n); refused if stock would go negative. Not with `stock`.',
        examples: [25],
      }),
    ),
    active: Type.Optional(Type.Boolean()),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    examples: [{ priceMinor: 1999 }, { stockDelta: 25 }, { active: false }],
  },
);

export const ProductIdParams = Type.Object({ id: Uuid }, { additionalProperties: false });
export const SkuIdParams = Type.Object({ id: Uuid }, { additionalProperties: false });

export const ListProductsQuery = Type.Object(
  {
    cursor: Type.Optional(Type.String({ maxLength: 200, description: 'From the previous page' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
    category: Type.Optional(Category),
    sellerId: Type.Optional(Uuid),
    active: Type.Optional(
      Type.Boolean({ description: 'Shoppers only ever see active products (sellers also their own)' }),
    ),
    q: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'Title contains (any case)' })),
    minPriceMinor: Type.Optional(MinorUnits('Some active SKU costs at least this')),
    maxPriceMinor: Type.Optional(MinorUnits('Some active SKU costs at most this')),
  },
  { additionalProperties: false },
);
