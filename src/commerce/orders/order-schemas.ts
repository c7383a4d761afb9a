import { Type } from '@sinclair/typebox';

const Uuid = Type.String({ format: 'uuid' });

export const CheckoutBody = Type.Object(
  {
    items: Type.Optional(
      Type.Array(
        Type.Object(
          { skuId: Uuid, quantity: Type.Integer({ minimum: 1, maximum: 1000 }) },
          { additionalProperties: false },
        ),
        { maxItems: 100 },
      ),
    ),
    reservations: Type.Optional(
      Type.Array(Uuid, { maxItems: 20, description: 'Flash-sale reservation ids to pay for' }),
    ),
    couponCode: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    streamId: Type.Optional(
      Type.String({ minLength: 1, maxLength: 100, description: 'The live stream the purchase happens in' }),
    ),
    streamMediaTimeMs: Type.Optional(
      Type.Integer({ minimum: 0, description: "The stream's media time at the moment of purchase" }),
    ),
  },
  {
    additionalProperties: false,
    examples: [
      {
        items: [{ skuId: '9b2f3c1e-8a1d-4c4e-9d5b-0f6f5c2a1b3c', quantity: 1 }],
        couponCode: 'LIVE10',
        streamId: 'st_42',
        streamMediaTimeMs: 754000,
      },
    ],
  },
);

export const OrderSchema = Type.Object(
  {
    id: Uuid,
    userId: Uuid,
    status: Type.Union(
      ['pending_payment', 'paid', 'fulfilled', 'cancelled', 'expired'].map((s) => Type.Literal(s)),
    ),
    currency: Type.String(),
    subtotalMinor: Type.Integer(),
    discountMinor: Type.Integer(),
    shippingMinor: Type.Integer(),
    totalMinor: Type.Integer(),
    couponCode: Type.Union([Type.String(), Type.Null()]),
    streamId: Type.Union([Type.String(), Type.Null()]),
    streamMediaTimeMs: Type.Union([Type.Integer(), Type.Null()]),
    paymentRef: Type.Union([Type.String(), Type.Null()]),
    expiresAt: Type.String({ format: 'date-time' }),
    paidAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    createdAt: Type.String({ format: 'date-time' }),
    items: Type.Array(
      Type.Object({
        skuId: Uuid,
        productId: Uuid,
        title: Type.String(),
        quantity: Type.Integer(),
        unitPriceMinor: Type.Integer(),
        flashSaleId: Type.Union([Uuid, Type.Null()]),
        reservationId: Type.Union([Uuid, Type.Null()]),
      }),
    ),
  },
  { $id: 'Order' },
);

export const PayBody = Type.Object(
  {
    method: Type.Union(
      [Type.Literal('test_card_ok'), Type.Literal('test_card_declined'), Type.Literal('test_card_hang')],
      {
        description: 'Built-in test provider: succeeds, is declined, or never answers',
      },
    ),
  },
  { additionalProperties: false, examples: [{ method: 'test_card_ok' }] },
);

export const OrderIdParams = Type.Object({ id: Uuid }, { additionalProperties: false });

/**
 * Declared optional so a missing key gets the specific IDEMPOTENCY_KEY_REQUIRED
 * code from `parseIdempotencyKey` rather than a generic schema failure; every
 * route using it requires the header.
 */
export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      description:
        'Required. Client-chosen key (8-200 of A-Z a-z 0-9 . _ : -); a retry with the same key returns the first result',
    }),
  ),
});

export const ListOrdersQuery = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
    before: Type.Optional(
      Type.String({ format: 'date-time', description: 'Only orders created before this time' }),
    ),
  },
  { additionalProperties: false },
);
