/**
 * `/v1/datasets`: list, inspect and upload (zip) datasets.
 * @module
 */
import type {} from '@fastify/multipart';
import type { Readable } from 'node:stream';
import { AppError } from '../../infra/errors.ts';
import type { OperationHandlers } from '../openapi/register-operations.ts';
import type { DatasetsPort } from '../ports.ts';

export function datasetHandlers(deps: { datasets: DatasetsPort; maxUploadBytes: number }): Pick<OperationHandlers, 'listDatasets' | 'getDataset' | 'createDataset'> {
  return {
    listDatasets: async () => ({ datasets: await deps.datasets.list() }),
    getDataset: async (request) => deps.datasets.get((request.params as { datasetId: string }).datasetId),
    createDataset: async (request, reply) => {
      const { id } = request.query as { id?: string };
      let zip: Readable;
      if (request.isMultipart()) {
        // One byte over the limit, so the service's own count answers PAYLOAD_TOO_LARGE instead of the
        // multipart parser silently truncating the archive.
        const file = await request.file({ limits: { fileSize: deps.maxUploadBytes + 1, files: 1 } });
        if (!file || file.fieldname !== 'file') throw new AppError('VALIDATION_FAILED', 'send the zip in the multipart field "file"');
        zip = file.file;
      } else {
        // The application/zip parser (app.ts) hands the body over as a stream.
        zip = request.body as Readable;
      }
      const dataset = await deps.datasets.createFromZip(zip, id);
      return reply.code(201).header('Location', `/v1/datasets/${dataset.id}`).send(dataset);
    },
  };
}
