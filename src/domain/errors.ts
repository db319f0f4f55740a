/** The one error type callers see. `status` is the HTTP status the API answers with. */
export type ErrorCode =
  | 'bad_request'
  | 'validation_failed'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'illegal_transition'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'rate_limited'
  | 'shutting_down'
  | 'store_unavailable'
  | 'not_ready'
  | 'internal';

export class ApiError extends Error {
  constructor(
    public readonly status: number,
    public readonly code: ErrorCode,
    message: string,
    public readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  static notFound(what: string, id: string): ApiError {
    return new ApiError(404, 'not_found', `${what} ${id} not found`, { id });
  }
  static conflict(message: string, details: Record<string, unknown> = {}): ApiError {
    return new ApiError(409, 'conflict', message, details);
  }
  static invalid(problems: { path: string; message: string }[]): ApiError {
    const first = problems[0];
    const message = first ? `${first.path}: ${first.message}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ''}` : 'invalid input';
    return new ApiError(400, 'validation_failed', message, { problems });
  }
}
