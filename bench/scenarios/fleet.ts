/**
 * The organizations and endpoints of a delivery scenario ("a fleet"): `orgs` enterprise organizations,
 * each with `perOrg` endpoints subscribed to every event type (`["*"]`), all pointing at the receiver
 * process on paths `/<name>/<org>/<endpoint>` — on one port (one origin) or spread over its ports
 * (8 origins: endpoint of organization i on port i; with several endpoints per organization, endpoint
 * k on port k). The receiver gets every endpoint's signing secret for its path.
 */
import { createEndpoint, createOrgs, inParallel, patchEndpoint, type Endpoint, type Org } from '../lib/api.ts'
import type { ReceiverProcess } from '../load/receiver-handle.ts'

export interface Fleet {
  readonly name: string
  readonly orgs: Org[]
  readonly endpoints: Endpoint[]
  /** The receiver path prefix of every endpoint of this fleet. */
  readonly prefix: string
  readonly origins: 'many' | 'one'
}

export interface FleetSpec {
  readonly name: string
  readonly orgs: number
  readonly perOrg: number
  readonly origins: 'many' | 'one'
  readonly status: 'active' | 'paused'
}

export async function makeFleet (port: number, receiver: ReceiverProcess, runId: string, s: FleetSpec): Promise<Fleet> {
  const orgs = await createOrgs(port, s.orgs, `${runId}-${s.name}`)
  const endpoints: Endpoint[] = []
  const jobs: (() => Promise<void>)[] = []
  for (const [i, org] of orgs.entries()) {
    for (let k = 0; k < s.perOrg; k++) {
      const portIndex = s.origins === 'one' ? 0 : (s.perOrg > 1 ? k : i) % receiver.ports.length
      const url = receiver.url(portIndex, `/${s.name}/${i}/${k}`)
      jobs.push(async () => { endpoints.push(await createEndpoint(port, org, url, s.status)) })
    }
  }
  await inParallel(jobs, 4)
  await receiver.addSecrets(endpoints.map(e => [e.path, e.secret] as const))
  return { name: s.name, orgs, endpoints, prefix: `/${s.name}/`, origins: s.origins }
}

/** PATCHes every endpoint of the fleet at once. */
export async function setFleetStatus (port: number, f: Fleet, status: 'active' | 'paused'): Promise<void> {
  await Promise.all(f.endpoints.map(async e => { await patchEndpoint(port, e, { status }) }))
}
