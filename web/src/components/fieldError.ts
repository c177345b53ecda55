import { isApiError } from "../api/client";
import { describeError, sentence } from "./errors";

/**
 * A validation error's message for display under its field: the server's
 * "time_zone: unknown time zone X" without the field name the field already shows.
 */
export function fieldMessage(error: unknown): string {
  if (isApiError(error) && error.field) {
    const prefix = `${error.field}: `;
    if (error.message.startsWith(prefix)) return sentence(error.message.slice(prefix.length));
  }
  return describeError(error);
}
