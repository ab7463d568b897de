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
      const filePath = await deps.models.filePath(modelId, file);
      return reply.type(file.endsWith('.json') ? 'application/json' : 'application/octet-stream').send(createReadStream(filePath));
    },
    setModelAlias: async (request) => {
      const { modelId, alias } = request.params as { modelId: string; alias: string };
      await deps.models.setAlias(alias, modelId);
      return deps.models.get(modelId);
    },
  };
}
