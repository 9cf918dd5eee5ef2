// AWS JSON-protocol errors: HTTP status, `x-amzn-ErrorType` and a body
//   {"__type": "<ErrorShape>", "<message member>": "...", ...other modeled members}
// The message member is named as in the model: "Message" for Cost Explorer's error shapes,
// "message" for Invoicing's and for the service-framework errors (signature, unknown operation,
// serialization, validation) that no model lists. The HTTP statuses are the JSON protocols'
// defaults (400 for client errors, 500 for server faults) because neither model gives any;
// see README.md for the captures and guesses behind each choice.

import { messageMember } from './model.mjs';

// Errors every AWS JSON service can send although no model lists them ("common errors").
// type -> [status, default message]; status null = the configured auth error status.
export const COMMON_ERRORS = {
  IncompleteSignatureException: [null, 'The request signature does not conform to AWS standards.'],
  InvalidSignatureException: [null, 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.'],
  UnrecognizedClientException: [null, 'The security token included in the request is invalid.'],
  MissingAuthenticationTokenException: [null, 'Missing Authentication Token'],
  ExpiredTokenException: [null, 'The security token included in the request is expired'],
  AccessDeniedException: [400, 'User is not authorized to perform this action'],
  UnknownOperationException: [400, null],
  SerializationException: [400, null],
  ValidationException: [400, null],
  ThrottlingException: [400, 'Rate exceeded'],
  InternalFailure: [500, 'The request processing has failed because of an unknown error, exception or failure.'],
  ServiceUnavailable: [503, 'The request has failed due to a temporary failure of the server.'],
};

export const AUTH_ERRORS = new Set(['IncompleteSignatureException', 'InvalidSignatureException',
  'UnrecognizedClientException', 'MissingAuthenticationTokenException', 'ExpiredTokenException']);

export class ApiError extends Error {
  // fields: other members of the error shape ({reason, fieldList, ResourceName, ...})
  constructor(type, message, { status, fields = {} } = {}) {
    super(message ?? COMMON_ERRORS[type]?.[1] ?? type);
    this.type = type;
    this.status = status; // resolved in errorResponse() when undefined
    this.fields = fields;
  }
}

// Coral-style namespaces for x-amzn-ErrorType on Cost Explorer (a Coral service: its errors
// arrive as "Type:http://internal.amazon.com/coral/<namespace>/"); Invoicing gets the bare type.
const CORAL_NS = {
  ValidationException: 'com.amazon.coral.validate',
  default: 'com.amazon.coral.service',
  modeled: 'com.amazonaws.awsinsightsindexservice',
};

// -> { status, headers, body } for an ApiError raised while serving `service` ({name, model}).
export function errorResponse(err, service, cfg) {
  const model = service?.model;
  const modeled = Boolean(model?.shapes[err.type]?.exception);
  let status = err.status;
  if (status === undefined) {
    if (AUTH_ERRORS.has(err.type)) status = cfg.authErrorStatus;
    else if (modeled) status = model.shapes[err.type].error?.httpStatusCode ?? (model.shapes[err.type].fault ? 500 : 400);
    else status = COMMON_ERRORS[err.type]?.[0] ?? 400;
  }
  const member = modeled ? messageMember(model, err.type) : 'message';
  const body = { __type: err.type, [member]: err.message, ...err.fields };
  let errorType = err.type;
  if (service?.name === 'ce') {
    const ns = modeled ? CORAL_NS.modeled : (CORAL_NS[err.type] || CORAL_NS.default);
    errorType = `${err.type}:http://internal.amazon.com/coral/${ns}/`;
  }
  return {
    status,
    headers: {
      'Content-Type': service ? service.contentType : 'application/x-amz-json-1.1',
      'x-amzn-ErrorType': errorType,
    },
    body: JSON.stringify(body),
  };
}
