/** Every HTTP route the stack deploys (serverless.yml), as API Gateway names them. */
export const ROUTE_KEYS = [
  'GET /api/loyalty/v1/ml/models',
  'GET /api/loyalty/v1/ml/models/{name}',
  'GET /api/loyalty/v1/ml/models/{name}/performance',
  'GET /api/loyalty/v1/segments/{id}/ml/runs/{run_id}',
  'GET /api/loyalty/v1/segments/{id}/ml/stats/',
  'POST /api/loyalty/v1/config/ml/test/',
  'POST /api/loyalty/v1/ml/predict',
  'POST /api/loyalty/v1/ml/predict/batch',
  'POST /api/loyalty/v1/segments/{id}/ml/predict/',
];
