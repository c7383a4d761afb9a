import { Type } from '@sinclair/typebox';
import { MinorUnits } from '../catalog/catalog-schemas.js';
import { COUPON_CODE_PATTERN, COUPON_TYPES } from './coupons-service.js';

const Uuid = Type.String({ format: 'uuid' });
const DateTime = Type.String({ format: 'date-time' });
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) =>
  Type.Union([schema, Type.Null()]);
const Int = (minimum: number, description: string) =>
  Type.Integer({ minimum, maximum: 2_147_483_647, description });

export const CouponTypeSchema = Type.Union(
  COUPON_TYPES.map((t) => Type.Literal(t)),
  { description: 'percentage, fixed (amount off), free_shipping or bogo (buy X get Y of the same SKU)' },
);
const CouponCode = Type.String({
  pattern: COUPON_CODE_PATTERN,
  description: 'Matched case-insensitively; stored upper case',
  examples: ['LIVE10'],
});
const StreamId = Type.String({ minLength: 1, maxLength: 100, description: 'Live stream id' });

const couponExample = {
  id: '3f1c2b4a-5d6e-4f70-8a9b-0c1d2e3f4a55',
  code: 'LIVE10',
  type: 'percentage',
  percentOff: 10,
  amountOffMinor: null,
  currency: null,
  buyQuantity: null,
  getQuantity: null,
  startsAt: '2025-05-01T18:00:00.000Z',
  endsAt: '2025-05-01T20:00:00.000Z',
  usageLimit: 500,
  perUserLimit: 1,
  minOrderMinor: 2000,
  maxDiscountMinor: 1500,
  productIds: ['0b6f4c0e-3d0f-4a8e-9a1e-5c2d7b9f1a22'],
  categories: [],
  streamId: 'b7e0c3a2-1f4d-4e6b-9c8a-7d5e3f2a1b00',
  active: true,
  uses: 42,
  createdBy: '5a1e2c3d-4b5f-4e6a-8b7c-9d0e1f2a3b44',
  createdAt: '2025-05-01T12:00:00.000Z',
};

export const CouponSchema = Type.Object(
  {
    id: Uuid,
    code: Type.String(),
    type: CouponTypeSchema,
    percentOff: Nullable(Type.Integer()),
    amountOffMinor: Nullable(Type.Integer()),
    currency: Nullable(Type.String()),
    buyQuantity: Nullable(Type.Integer()),
    getQuantity: Nullable(Type.Integer()),
    startsAt: Nullable(DateTime),
    endsAt: Nullable(DateTime),
    usageLimit: Nullable(Type.Integer()),
    perUserLimit: Nullable(Type.Integer()),
    minOrderMinor: Type.Integer(),
    maxDiscountMinor: Nullable(Type.Integer()),
    productIds: Type.Array(Type.String()),
    categories: Type.Array(Type.String()),
    streamId: Nullable(Type.String()),
    active: Type.Boolean(),
    uses: Type.Integer({ description: 'Unreleased redemptions; never exceeds usageLimit' }),
    createdBy: Uuid,
    createdAt: DateTime,
  },
  { $id: 'Coupon', examples: [couponExample] },
);

export const CouponPageSchema = Type.Object(
  {
    items: Type.Array(Type.Ref(CouponSchema)),
    nextCursor: Nullable(Type.String()),
  },
  { $id: 'CouponPage', examples: [{ items: [couponExample], nextCursor: null }] },
);

export const CreateCouponBody = Type.Object(
  {
    code: CouponCode,
    type: CouponTypeSchema,
    percentOff: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 100, description: 'percentage: required' }),
    ),
    amountOffMinor: Type.Optional(Int(1, 'fixed: required; minor units of `currency`')),
    currency: Type.Optional(
      Type.String({ pattern: '^[A-Z]{3}$', description: 'Required for fixed; restricts the others' }),
    ),
    buyQuantity: Type.Optional(Int(1, 'bogo: required; units to buy')),
    getQuantity: Type.Optional(Int(1, 'bogo: required; units then free')),
    startsAt: Type.Optional(Type.String({ format: 'date-time', description: 'Valid from (inclusive)' })),
    endsAt: Type.Optional(Type.String({ format: 'date-time', description: 'Valid until (exclusive)' })),
    usageLimit: Type.Optional(Int(0, 'Total redemptions; absent = unlimited')),
    perUserLimit: Type.Optional(Int(1, 'Redemptions per user; absent = unlimited')),
    minOrderMinor: Type.Optional(MinorUnits('Minimum eligible subtotal')),
    maxDiscountMinor: Type.Optional(MinorUnits('Cap on the discount')),
    productIds: Type.Optional(
      Type.Array(Uuid, {
        maxItems: 100,
        uniqueItems: true,
        description:
          'Only these products (streamers must list products they sell; admins may leave it empty)',
      }),
    ),
    categories: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
        maxItems: 50,
        description: 'Only these categories (combined with productIds: a line must pass both)',
      }),
    ),
    streamId: Type.Optional(StreamId),
    active: Type.Optional(Type.Boolean({ default: true })),
  },
  {
    additionalProperties: false,
    examples: [
      {
        code: 'LIVE10',
        type: 'percentage',
        percentOff: 10,
        maxDiscountMinor: 1500,
        perUserLimit: 1,
        usageLimit: 500,
        productIds: ['0b6f4c0e-3d0f-4a8e-9a1e-5c2d7b9f1a22'],
        endsAt: '2025-05-01T20:00:00.000Z',
      },
      {
        code: 'FIVEOFF',
        type: 'fixed',
        amountOffMinor: 500,
        currency: 'EUR',
        minOrderMinor: 3000,
        productIds: ['0b6f4c0e-3d0f-4a8e-9a1e-5c2d7b9f1a22'],
      },
      { code: 'B2G1', type: 'bogo', buyQuantity: 2, getQuantity: 1, categories: ['apparel'] },
    ],
  },
);

export const UpdateCouponBody = Type.Object(
  {
    active: Type.Optional(Type.Boolean()),
    startsAt: Type.Optional(Nullable(DateTime)),
    endsAt: Type.Optional(Nullable(DateTime)),
    usageLimit: Type.Optional(Nullable(Int(0, 'May not drop below current uses; null = unlimited'))),
    perUserLimit: Type.Optional(Nullable(Int(1, 'null = unlimited'))),
    minOrderMinor: Type.Optional(MinorUnits('Minimum eligible subtotal')),
    maxDiscountMinor: Type.Optional(Nullable(MinorUnits('Cap on the discount; null = none'))),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    examples: [{ active: false }, { usageLimit: 1000, endsAt: '2025-05-02T20:00:00.000Z' }],
  },
);

export const CouponIdParams = Type.Object({ id: Uuid }, { additionalProperties: false });

export const ListCouponsQuery = Type.Object(
  {
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
    active: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const ValidateCouponBody = Type.Object(
  {
    code: Type.String({ minLength: 1, maxLength: 64, examples: ['LIVE10'] }),
    items: Type.Array(
      Type.Object(
        {
          skuId: Uuid,
          quantity: Type.Integer({ minimum: 1, maximum: 10_000 }),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 100 },
    ),
    streamId: Type.Optional(StreamId),
    shippingMinor: Type.Optional(MinorUnits('Shipping the order would charge; default: the server fee')),
  },
  {
    additionalProperties: false,
    examples: [
      {
        code: 'LIVE10',
        items: [{ skuId: '7d3c1f80-2f4e-4a55-9d7f-2b4f1a0c9e11', quantity: 2 }],
        streamId: 'b7e0c3a2-1f4d-4e6b-9c8a-7d5e3f2a1b00',
      },
    ],
  },
);

export const CouponQuoteSchema = Type.Object(
  {
    couponId: Uuid,
    code: Type.String(),
    type: CouponTypeSchema,
    discountMinor: Type.Integer({ description: 'Taken off the items' }),
    freeShipping: Type.Boolean(),
    eligibleSubtotalMinor: Type.Integer({ description: 'Subtotal of the lines the coupon applies to' }),
    currency: Type.String(),
    subtotalMinor: Type.Integer({ description: 'All lines' }),
    shippingMinor: Type.Integer({ description: 'After the coupon' }),
    totalMinor: Type.Integer({ description: 'subtotal - discount + shipping' }),
  },
  {
    $id: 'CouponQuote',
    examples: [
      {
        couponId: '3f1c2b4a-5d6e-4f70-8a9b-0c1d2e3f4a55',
        code: 'LIVE10',
        type: 'percentage',
        discountMinor: 499,
        freeShipping: false,
        eligibleSubtotalMinor: 4998,
        currency: 'EUR',
        subtotalMinor: 4998,
        shippingMinor: 490,
        totalMinor: 4989,
      },
    ],
  },
);

export const CouponUsageSchema = Type.Object(
  {
    couponId: Uuid,
    redemptions: Type.Integer({ description: 'Unreleased redemptions' }),
    released: Type.Integer({ description: 'Given back by cancelled or expired orders' }),
    discountGivenMinor: Type.Integer(),
    revenueMinor: Type.Integer({ description: 'Total of paid or fulfilled orders that used it' }),
  },
  {
    $id: 'CouponUsage',
    examples: [
      {
        couponId: '3f1c2b4a-5d6e-4f70-8a9b-0c1d2e3f4a55',
        redemptions: 42,
        released: 3,
        discountGivenMinor: 18900,
        revenueMinor: 176400,
      },
    ],
  },
);
