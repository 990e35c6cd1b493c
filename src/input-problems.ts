import type { z } from 'zod';

/** One line per problem, naming the field: what a user who typed the JSON needs to fix it. */
export function describeInputProblems(error: z.ZodError): string {
  return error.issues.map((issue) => `  ${issue.path.length > 0 ? issue.path.join('.') : '(input)'}: ${issue.message}`).join('\n');
}
