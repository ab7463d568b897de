/**
 * Class-name mapping between the project's batch-normalisation layer and the stock Keras/tfjs one in
 * a saved `modelTopology`.
 *
 * Our architectures train with `FastBatchNormalization` (src/ml/models/fast-batch-norm.ts): Keras's
 * `BatchNormalization(axis=-1)` with the same weights, names and inference maths but a cheaper
 * training gradient. A `model.json` naming that class loads only where it is registered, so a plain
 * `tf.loadLayersModel(url)` in a browser or another process fails with "Unknown layer". On disk the
 * layer is therefore written as the standard `BatchNormalization` with the config stock tfjs writes
 * ({@link toPortableTopology}); our loader maps it back ({@link toProjectTopology}) so that a loaded
 * model trains and predicts at the speed of the model that was saved. The weights are untouched by
 * either direction: the stock layer creates `gamma` (unless `scale: false`), `beta` (unless
 * `center: false`), `moving_mean`, `moving_variance` under the same names and in the same order, so
 * the shards stay valid byte for byte.
 *
 * `scale: false` (InceptionV3): stock tfjs creates no `gamma` then and its inference path passes a
 * null scale to `tf.batchNorm`, which is exactly our inference maths; only its training path reads
 * the absent `gamma` and throws (tensorflow/tfjs#2868). Served files are for inference, so they keep
 * `scale: false` and Keras's parameter count rather than a synthetic `gamma = 1`.
 * @module
 */

/** The stock Keras/tfjs class name written into saved files. */
export const STANDARD_BN_CLASS = 'BatchNormalization';

/** The project's layer class that a compatible stock layer is loaded as. */
export const PROJECT_BN_CLASS = 'FastBatchNormalization';

/**
 * Class names of the project's BN layers, past and present. `ScalelessBatchNormalization` is the
 * name InceptionV3's scale-less layer had before it became `FastBatchNormalization({scale: false})`.
 */
export const PROJECT_BN_CLASSES: readonly string[] = Object.freeze([PROJECT_BN_CLASS, 'ScalelessBatchNormalization']);

/** Config keys the project layer takes besides `momentum`, `epsilon`, `center`, `scale` (Layer's own). */
const LAYER_KEYS = ['name', 'trainable', 'dtype', 'batch_input_shape'] as const;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/**
 * A copy of `topology` in which every project BN layer is the stock `BatchNormalization`, with the
 * full config stock tfjs writes (axis -1, initialisers, no regularisers or constraints), so that
 * `tf.loadLayersModel` with nothing but `@tensorflow/tfjs` rebuilds it. Other layers are copied as is.
 * @param topology A `modelTopology` as `model.save` produces it (nested models included).
 */
export function toPortableTopology<T>(topology: T): T {
  return mapLayers(topology, (layer) => {
    if (!PROJECT_BN_CLASSES.includes(layer.class_name as string)) return null;
    const config = asObject(layer.config) ?? {};
    const scale = layer.class_name === PROJECT_BN_CLASS ? config.scale !== false : false;
    const standard: JsonObject = {
      axis: -1,
      momentum: numberOr(config.momentum, 0.99),
      epsilon: numberOr(config.epsilon, 1e-3),
      center: config.center !== false,
      scale,
      beta_initializer: { class_name: 'Zeros', config: {} },
      gamma_initializer: { class_name: 'Ones', config: {} },
      moving_mean_initializer: { class_name: 'Zeros', config: {} },
      moving_variance_initializer: { class_name: 'Ones', config: {} },
      beta_regularizer: null,
      gamma_regularizer: null,
      beta_constraint: null,
      gamma_constraint: null,
    };
    for (const key of LAYER_KEYS) if (key in config) standard[key] = config[key] as Json;
    return { ...layer, class_name: STANDARD_BN_CLASS, config: standard };
  });
}

/**
 * A copy of `topology` in which every stock `BatchNormalization` that the project layer computes
 * identically (normalising the last axis, no regulariser or constraint) is a `FastBatchNormalization`.
 * Any other BN layer (e.g. `axis: 1` from some Keras export) stays stock: correct, only slower to
 * train. Files written by earlier versions, which name the project classes directly, pass unchanged.
 * @param topology A `modelTopology` from a `model.json`.
 */
export function toProjectTopology<T>(topology: T): T {
  return mapLayers(topology, (layer) => {
    if (layer.class_name !== STANDARD_BN_CLASS) return null;
    const config = asObject(layer.config);
    if (config === null || !isProjectCompatible(config)) return null;
    const project: JsonObject = {
      momentum: numberOr(config.momentum, 0.99),
      epsilon: numberOr(config.epsilon, 1e-3),
      center: config.center !== false,
      scale: config.scale !== false,
    };
    for (const key of LAYER_KEYS) if (key in config) project[key] = config[key] as Json;
    return { ...layer, class_name: PROJECT_BN_CLASS, config: project };
  });
}

/** True when the stock layer described by `config` normalises exactly as the project layer would. */
function isProjectCompatible(config: JsonObject): boolean {
  const axis = config.axis;
  const lastAxis = axis === undefined || axis === null || axis === -1 || (Array.isArray(axis) && axis.length === 1 && axis[0] === -1);
  const none = (key: string): boolean => config[key] === undefined || config[key] === null;
  return lastAxis && none('beta_regularizer') && none('gamma_regularizer') && none('beta_constraint') && none('gamma_constraint');
}

/**
 * Deep copy of `value` in which each layer entry (an object with a string `class_name` and an object
 * `config`) is replaced by `rewrite(entry)` when that returns one. Walks every nested object, so
 * nested models and Keras's `model_config` wrapper are covered; initialiser entries also have a
 * `class_name`, but `rewrite` only matches BN class names.
 */
function mapLayers<T>(value: T, rewrite: (layer: JsonObject) => JsonObject | null): T {
  const walk = (node: Json): Json => {
    if (Array.isArray(node)) return node.map(walk);
    if (node === null || typeof node !== 'object') return node;
    const copy: JsonObject = {};
    for (const [key, child] of Object.entries(node)) copy[key] = walk(child);
    if (typeof copy.class_name === 'string' && asObject(copy.config) !== null) return rewrite(copy) ?? copy;
    return copy;
  };
  return walk(value as Json) as T;
}

function asObject(value: Json | undefined): JsonObject | null {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : null;
}

function numberOr(value: Json | undefined, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}
