import { Type } from '@sinclair/typebox';

const Uuid = Type.String({ format: 'uuid' });

export const CreateFlashSaleBody = Type.Object(
  {
    skuId: Uuid,
    salePriceMinor: Type.Integer({ minimum: 0 }),
    quantity: Type.Integer({ minimum: 1, maximum: 10_000_000 }),
    perUserLimit: Type.Integer({ minimum: 1, maximum: 1000 }),
    reservationTtlSeconds: Type.Integer({
      minimum: 1,
      maximum: 3600,
      description: 'Time a buyer has to pay',
    }),
    startsAt: Type.String({ format: 'date-time' }),
    endsAt: Type.String({ format: 'date-time' }),
    streamId: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  },
  {
    additionalProperties: false,
    examples: [
      {
        skuId: '9b2f3c1e-8a1d-4c4e-9d5b-0f6f5c2a1b3c',
        salePriceMinor: 1799,
        quantity: 50,
        perUserLimit: 2,
        reservationTtlSeconds: 300,
        startsAt: '2026-11-25T18:00:00Z',
        endsAt: '2026-11-25T18:05:00Z',
        streamId: 'st_42',
      },
    ],
  },
);

export const FlashSaleSchema = Type.Object(
  {
    id: Uuid,
    productId: Uuid,
    skuId: Uuid,
    streamId: Type.Union([Type.String(), Type.Null()]),
    salePriceMinor: Type.Integer(),
    currency: Type.String(),
    quantity: Type.Integer(),
    perUserLimit: Type.Integer(),
    reservationTtlSeconds: Type.Integer(),
    startsAt: Type.String({ format: 'date-time' }),
    endsAt: Type.String({ format: 'date-time' }),
    state: Type.Union([Type.Literal('scheduled'), Type.Literal('live'), Type.Literal('ended')]),
    remaining: Type.Integer({ description: 'Units not reserved or sold' }),
  },
  { $id: 'FlashSale' },
);

export const ReservationSchema = Type.Object(
  {
    reservationId: Uuid,
    saleId: Uuid,
    quantity: Type.Integer(),
    expiresAt: Type.String({ format: 'date-time', description: 'Pay (check out and pay) before this' }),
    salePriceMinor: Type.Integer(),
    currency: Type.String(),
    remaining: Type.Integer(),
  },
  { $id: 'FlashReservation' },
);

export const PurchaseBody = Type.Object(
  { quantity: Type.Integer({ minimum: 1, maximum: 1000, default: 1 }) },
  { additionalProperties: false, examples: [{ quantity: 1 }] },
);

export const SaleIdParams = Type.Object({ id: Uuid }, { additionalProperties: false });
export const ReservationParams = Type.Object(
  { id: Uuid, reservationId: Uuid },
  { additionalProperties: false },
);
