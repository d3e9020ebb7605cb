// Decides requests against IAM policies with @cloud-copilot/iam-simulate,
// which validates each action, resource ARN and condition key against AWS's
// own service data and evaluates every condition operator: a request the
// simulator finds invalid (an action that does not exist, a resource type
// the action does not take) fails the run instead of being decided. The
// simulator itself only sets aside a context key the action does not
// support (`ignoredContextKeys`), which would make a misspelt key in a test
// read as a deny: that fails the run here too.
//
// Input (stdin, JSON): {"policies": {"engineer": {...AWS policy JSON}, ...},
//   "requests": [{"policies": ["engineer"], "resource_policy": "preview_assume" (optional),
//                 "principal": "arn:aws:iam::...",
//                 "action": "ec2:StopInstances", "resource": "arn:...",
//                 "context": {"aws:PrincipalTag/workstation-owner": "alice", ...}}]}
// Output (stdout, JSON): [{"decision": "allow" | "deny", "by": ["engineer#Sid", ...]}, ...]
//   `by`: the statements that allowed it, or that explicitly denied it.
//
// Usage: node simulate.mjs < requests.json
import { runSimulation } from '@cloud-copilot/iam-simulate'

const ACCOUNT = '111122223333'

function read(stream) {
  return new Promise((resolve, reject) => {
    let text = ''
    stream.setEncoding('utf8')
    stream.on('data', (chunk) => (text += chunk))
    stream.on('end', () => resolve(text))
    stream.on('error', reject)
  })
}

async function decide(policies, request, index) {
  const identityPolicies = request.policies.map((name) => {
    if (!policies[name]) throw new Error(`request ${index}: no policy document ${name}`)
    return { name, policy: policies[name] }
  })
  const simulation = {
    request: {
      principal: request.principal,
      action: request.action,
      resource: { resource: request.resource, accountId: ACCOUNT },
      contextVariables: request.context || {},
    },
    identityPolicies,
    serviceControlPolicies: [],
    resourceControlPolicies: [],
  }
  if (request.resource_policy) {
    if (!policies[request.resource_policy]) throw new Error(`request ${index}: no policy document ${request.resource_policy}`)
    simulation.resourcePolicy = policies[request.resource_policy]
  }
  const result = await runSimulation(simulation, {})
  if (result.resultType === 'error') {
    throw new Error(`request ${index} (${request.action} on ${request.resource}) is not valid for AWS: ${JSON.stringify(result.errors)}`)
  }
  const ignored = result.resultType === 'single' ? result.result.ignoredContextKeys : result.results?.[0]?.ignoredContextKeys
  if (ignored?.length) {
    throw new Error(`request ${index} (${request.action} on ${request.resource}): context keys AWS does not send with it: ${JSON.stringify(ignored)}`)
  }
  const analysis = result.resultType === 'single' ? result.result.analysis : result.results[0]?.analysis
  const allowed = result.overallResult === 'Allowed'
  const by = []
  for (const part of [analysis?.identityAnalysis, analysis?.resourceAnalysis]) {
    const decisive = allowed ? part?.allowStatements : part?.denyStatements
    by.push(...(decisive || []).map((s) => `${s.policyId ?? s.policyName ?? 'resource'}#${s.statement?.sid?.() ?? s.explain?.identifier ?? '?'}`))
  }
  return { decision: allowed ? 'allow' : 'deny', by }
}

const input = JSON.parse(await read(process.stdin))
const out = []
for (const [i, request] of input.requests.entries()) {
  out.push(await decide(input.policies, request, i))
}
process.stdout.write(JSON.stringify(out))
