/**
 * `/v1/models`: trained models, their aliases, and their files in TensorFlow.js layers format.
 * @module
 */
import { createReadStream } from 'node:fs';
import type { OperationHandlers } from '../openapi/register-operations.ts';
import type { ModelsPort } from '../ports.ts';

export function modelHandlers(deps: { models: ModelsPort }): Pick<OperationHandlers, 'listModels' | 'getModel' | 'getModelFile' | 'setModelAlias'> {
  return {
    listModels: async () => {
      const [models, aliases] = await Promise.all([deps.models.list(), deps.models.aliases()]);
      return { models, aliases };
    },
    getModel: async (request) => deps.models.get((request.params as { modelId: string }).modelId),
    getModelFile: async (request, reply) => {
      const { modelId, file } = request.params as { modelId: string; file: string };
      const model = await deps.models.get(modelId);
      // An alias may move between the download of model.json and its shards: send clients to the
      // model's own id, whose files never change, so one download never mixes two models.
      if (model.id !== modelId) return reply.redirect(`/v1/models/${encodeURIComponent(model.id)}/files/${encodeURIComponent(file)}`, 307);
      const filePath = await deps.models.filePath(model.id, file);
      return reply
        .type(file.endsWith('.json') ? 'application/json' : 'application/octet-stream')
        .header('Cache-Control', 'private, max-age=31536000, immutable')
        .header('ETag', `"${model.version}-${file}"`)
        .send(createReadStream(filePath));
    },
    setModelAlias: async (request) => {
      const { modelId, alias } = request.params as { modelId: string; alias: string };
      await deps.models.setAlias(alias, modelId);
      return deps.models.get(modelId);
    },
  };
}
