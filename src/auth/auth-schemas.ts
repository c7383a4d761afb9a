import { type Static, Type } from '@sinclair/typebox';
import { ROLES } from './permissions.js';

export const RoleSchema = Type.Union(
  ROLES.map((r) => Type.Literal(r)),
  { description: 'viewer (also shopper), streamer, agent or admin' },
);

export const PublicUserSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    email: Type.String({ format: 'email' }),
    displayName: Type.String(),
    roles: Type.Array(RoleSchema),
    createdAt: Type.String({ format: 'date-time' }),
  },
  { $id: 'PublicUser' },
);

export const SessionSchema = Type.Object(
  {
    user: Type.Ref(PublicUserSchema),
    token: Type.String({ description: 'JWT access token; send as `Authorization: Bearer <token>`' }),
    expiresAt: Type.String({ format: 'date-time' }),
  },
  { $id: 'Session' },
);

export const Email = Type.String({ format: 'email', maxLength: 254, examples: ['ann@example.com'] });
export const Password = Type.String({ minLength: 8, maxLength: 200, examples: ['correct horse battery'] });

export const RegisterBody = Type.Object(
  {
    email: Email,
    password: Password,
    displayName: Type.String({ minLength: 1, maxLength: 80, examples: ['Ann'] }),
  },
  { additionalProperties: false },
);
export type RegisterBody = Static<typeof RegisterBody>;

export const LoginBody = Type.Object(
  { email: Email, password: Type.String({ minLength: 1, maxLength: 200 }) },
  { additionalProperties: false },
);

export const UserIdParams = Type.Object(
  { id: Type.String({ format: 'uuid' }) },
  { additionalProperties: false },
);

export const SetRolesBody = Type.Object(
  { roles: Type.Array(RoleSchema, { minItems: 1, maxItems: ROLES.length, uniqueItems: true }) },
  { additionalProperties: false },
);
