// The intermediate's name-constraint flags (lib/policy/name-constraints.ts), shared by
// issue-intermediate and rotate-intermediate.
import type { Argv } from 'yargs';
import type { NameConstraintFlags } from '../../lib/policy/name-constraints.ts';

export type NameConstraintArgs = { nameConstraints?: boolean; uriConstraint?: boolean; permit?: string[] };

export function nameConstraintOptions<T>(y: Argv<T>, fallback: string) {
  return y
    .option('name-constraints', {
      type: 'boolean',
      describe: `critical nameConstraints: DNS <domain> and localhost, IP = RIVET_SAN_CIDRS, URI host <domain>; --no-name-constraints for none (default: ${fallback})`,
    })
    .option('uri-constraint', {
      type: 'boolean',
      describe:
        'include the URI constraint; --no-uri-constraint for verifiers that refuse URI constraints (Python cryptography)',
    })
    .option('permit', {
      type: 'string',
      array: true,
      describe: 'also permit DNS:<domain>, IP:<addr>/<bits> or URI:<host> (repeatable)',
    });
}

/** Only what was given: rotate-intermediate keeps the current choice for the rest. */
export function nameConstraintFlags(args: NameConstraintArgs): NameConstraintFlags {
  return { nameConstraints: args.nameConstraints, uriConstraint: args.uriConstraint, permit: args.permit?.map(String) };
}
