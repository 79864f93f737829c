//! The `f32` tensor: a shape, contiguous row-major storage on a device, and (when it takes
//! part in a computation that needs gradients) its place in the autograd graph.
//!
//! A `Tensor` is a cheap handle (`Clone` copies a pointer). Its values never change through
//! ops, which always create new tensors; the exceptions are explicit in-place updates of leaf
//! tensors ([`Tensor::update_data`]), which is what optimisers do to parameters, as
//! `torch.no_grad()` + in-place ops do in PyTorch. Views that only change the shape
//! ([`Tensor::reshape`]) share storage.
//!
//! Not here: strided views, dtypes other than `f32`, broadcasting in-place ops.

use crate::autograd::{self, GradFn};
use crate::backend::Device;
use crate::error::{Error, Result};
use crate::rng::Generator;
use parking_lot::{MappedRwLockReadGuard, Mutex, RwLock, RwLockReadGuard};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// The memory behind a tensor, or a gradient: one variant per device backend.
///
/// The CPU's is a vector. With the `cuda` feature there is a CUDA variant, whose type has no
/// values until the CUDA backend exists (so every match on it compiles and none can be
/// reached); ops check the devices of their inputs before they touch memory.
#[derive(Debug, Clone)]
pub(crate) enum Storage {
    Cpu(Vec<f32>),
    /// Made by the CUDA backend, once it exists (its type has no values yet).
    #[cfg(feature = "cuda")]
    #[allow(dead_code)]
    Cuda(crate::backend::cuda::CudaStorage),
}

impl Storage {
    /// Host memory: the values of a CPU storage.
    pub(crate) fn as_slice(&self) -> &[f32] {
        match self {
            Storage::Cpu(v) => v,
            #[cfg(feature = "cuda")]
            Storage::Cuda(c) => c.unreachable(),
        }
    }

    /// Host memory, to write.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [f32] {
        match self {
            Storage::Cpu(v) => v,
            #[cfg(feature = "cuda")]
            Storage::Cuda(c) => c.unreachable(),
        }
    }

    /// The CPU values, moved out (a CPU op's gradient).
    pub(crate) fn into_host(self) -> Vec<f32> {
        match self {
            Storage::Cpu(v) => v,
            #[cfg(feature = "cuda")]
            Storage::Cuda(c) => c.unreachable(),
        }
    }

    /// Elements held.
    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// `self += other`, elementwise, on their device (gradient accumulation).
    pub(crate) fn add_assign(&mut self, other: &Storage) {
        match (self, other) {
            (Storage::Cpu(a), Storage::Cpu(b)) => {
                a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
            }
            #[cfg(feature = "cuda")]
            (Storage::Cuda(c), _) => c.unreachable(),
            #[cfg(feature = "cuda")]
            (_, Storage::Cuda(c)) => c.unreachable(),
        }
    }
}

pub(crate) type SharedStorage = Arc<RwLock<Storage>>;

/// Wrap CPU values as shareable storage.
pub(crate) fn shared(data: Vec<f32>) -> SharedStorage {
    Arc::new(RwLock::new(Storage::Cpu(data)))
}

pub(crate) struct TensorImpl {
    id: u64,
    shape: Vec<usize>,
    storage: SharedStorage,
    device: Device,
    /// Leaves only: whether gradients are accumulated into `grad`.
    leaf_requires_grad: bool,
    grad_fn: Option<GradFn>,
    /// The accumulated gradient, on the tensor's device.
    grad: Mutex<Option<Storage>>,
}

/// An `f32` tensor with reverse-mode automatic differentiation.
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<TensorImpl>);

/// Read access to a tensor's values (a lock guard: drop it before updating the tensor).
pub type DataRef<'a> = MappedRwLockReadGuard<'a, [f32]>;

fn numel_of(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

impl Tensor {
    // ----- construction -------------------------------------------------------------------

    pub(crate) fn make(
        shape: Vec<usize>,
        storage: SharedStorage,
        requires_grad: bool,
        grad_fn: Option<GradFn>,
    ) -> Tensor {
        Tensor(Arc::new(TensorImpl {
            id: next_id(),
            shape,
            storage,
            device: Device::Cpu,
            leaf_requires_grad: requires_grad && grad_fn.is_none(),
            grad_fn,
            grad: Mutex::new(None),
        }))
    }

    /// A tensor from values and a shape (no gradient). Errors when the lengths disagree.
    ///
    /// ```
    /// use recurrent_core::Tensor;
    /// let t = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    /// assert_eq!(t.shape(), &[2, 3]);
    /// assert!(Tensor::from_vec(vec![1.0], &[2]).is_err());
    /// ```
    pub fn from_vec(data: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
        let n =
            numel_of(shape).ok_or_else(|| Error::invalid(format!("shape {shape:?} overflows")))?;
        if n != data.len() {
            return Err(Error::invalid(format!(
                "shape {shape:?} is invalid for input of size {}",
                data.len()
            )));
        }
        Ok(Self::from_vec_unchecked(data, shape.to_vec()))
    }

    pub(crate) fn from_vec_unchecked(data: Vec<f32>, shape: Vec<usize>) -> Tensor {
        debug_assert_eq!(numel_of(&shape), Some(data.len()));
        Self::make(shape, shared(data), false, None)
    }

    /// A 0-dimensional tensor holding `v`.
    pub fn scalar(v: f32) -> Tensor {
        Self::from_vec_unchecked(vec![v], vec![])
    }

    /// A tensor filled with `value`.
    pub fn full(shape: &[usize], value: f32) -> Result<Tensor> {
        let n =
            numel_of(shape).ok_or_else(|| Error::invalid(format!("shape {shape:?} overflows")))?;
        Tensor::from_vec(vec![value; n], shape)
    }

    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Result<Tensor> {
        Self::full(shape, 0.0)
    }

    /// A tensor of ones.
    pub fn ones(shape: &[usize]) -> Result<Tensor> {
        Self::full(shape, 1.0)
    }

    /// Uniform samples in `[low, high)`.
    pub fn rand_uniform(
        shape: &[usize],
        low: f32,
        high: f32,
        rng: &mut Generator,
    ) -> Result<Tensor> {
        let n =
            numel_of(shape).ok_or_else(|| Error::invalid(format!("shape {shape:?} overflows")))?;
        Tensor::from_vec(
            (0..n).map(|_| rng.uniform_range(low, high)).collect(),
            shape,
        )
    }

    /// Standard normal samples times `std` plus `mean`.
    pub fn randn(shape: &[usize], mean: f32, std: f32, rng: &mut Generator) -> Result<Tensor> {
        let n =
            numel_of(shape).ok_or_else(|| Error::invalid(format!("shape {shape:?} overflows")))?;
        Tensor::from_vec(
            (0..n).map(|_| mean + std * rng.normal() as f32).collect(),
            shape,
        )
    }

    /// The same values as a new leaf that accumulates gradients (`requires_grad=True`).
    pub fn requires_grad(self) -> Tensor {
        Self::make(self.0.shape.clone(), self.0.storage.clone(), true, None)
    }

    /// The same values, cut from the graph (shares storage).
    pub fn detach(&self) -> Tensor {
        Self::make(self.0.shape.clone(), self.0.storage.clone(), false, None)
    }

    /// A deep copy with fresh storage (no gradient).
    pub fn deep_clone(&self) -> Tensor {
        Self::from_vec_unchecked(self.to_vec(), self.0.shape.clone())
    }

    /// Move to a device. Only the CPU exists in this build; other devices return
    /// [`Error::DeviceUnavailable`].
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        device.check_available()?;
        Ok(self.clone())
    }

    // ----- inspection ---------------------------------------------------------------------

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.0.shape.len()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.0.shape.iter().product()
    }

    /// The device the tensor lives on.
    pub fn device(&self) -> Device {
        self.0.device
    }

    /// A unique id (for graph bookkeeping and debugging).
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// Read access to the values (row-major).
    pub fn data(&self) -> DataRef<'_> {
        RwLockReadGuard::map(self.0.storage.read(), |s| s.as_slice())
    }

    /// A copy of the values (row-major).
    pub fn to_vec(&self) -> Vec<f32> {
        self.data().to_vec()
    }

    /// The value of a one-element tensor.
    pub fn item(&self) -> Result<f32> {
        let d = self.data();
        if d.len() != 1 {
            return Err(Error::invalid(format!(
                "a Tensor with {} elements cannot be converted to Scalar",
                d.len()
            )));
        }
        Ok(d[0])
    }

    /// Whether gradients flow to or through this tensor.
    pub fn requires_grad_flag(&self) -> bool {
        self.0.leaf_requires_grad || self.0.grad_fn.is_some()
    }

    /// Whether this is a leaf (created by the user, not by an op that records gradients).
    pub fn is_leaf(&self) -> bool {
        self.0.grad_fn.is_none()
    }

    pub(crate) fn grad_fn(&self) -> Option<&GradFn> {
        self.0.grad_fn.as_ref()
    }

    pub(crate) fn storage(&self) -> &SharedStorage {
        &self.0.storage
    }

    /// The name of the op that produced this tensor (`None` for leaves).
    pub fn grad_fn_name(&self) -> Option<&'static str> {
        self.0.grad_fn.as_ref().map(|g| g.node.name())
    }

    // ----- gradients ----------------------------------------------------------------------

    /// The accumulated gradient of a leaf, if any backward pass reached it (a new tensor on
    /// the same device).
    pub fn grad(&self) -> Option<Tensor> {
        self.0.grad.lock().as_ref().map(|g| {
            Tensor(Arc::new(TensorImpl {
                id: next_id(),
                shape: self.0.shape.clone(),
                storage: Arc::new(RwLock::new(g.clone())),
                device: self.0.device,
                leaf_requires_grad: false,
                grad_fn: None,
                grad: Mutex::new(None),
            }))
        })
    }

    /// Whether a backward pass has left a gradient here.
    pub fn has_grad(&self) -> bool {
        self.0.grad.lock().is_some()
    }

    /// Run `f` on the accumulated gradient's values without copying them (host memory: for
    /// inspecting gradients of CPU tensors, as a progress bar does).
    pub fn with_grad<R>(&self, f: impl FnOnce(Option<&[f32]>) -> R) -> R {
        let g = self.0.grad.lock();
        f(g.as_ref().map(Storage::as_slice))
    }

    /// The accumulated gradient's storage, locked (for the optimiser and clipping ops).
    pub(crate) fn grad_lock(&self) -> parking_lot::MutexGuard<'_, Option<Storage>> {
        self.0.grad.lock()
    }

    /// Forget the accumulated gradient (PyTorch's `zero_grad(set_to_none=True)`).
    pub fn zero_grad(&self) {
        *self.0.grad.lock() = None;
    }

    /// Replace the accumulated gradient. Errors when the length is wrong.
    pub fn set_grad(&self, grad: Option<Vec<f32>>) -> Result<()> {
        if let Some(g) = &grad {
            if g.len() != self.numel() {
                return Err(Error::shape("grad", self.shape(), &[g.len()]));
            }
        }
        *self.0.grad.lock() = grad.map(Storage::Cpu);
        Ok(())
    }

    pub(crate) fn accumulate_grad(&self, g: Storage) {
        let mut slot = self.0.grad.lock();
        match slot.as_mut() {
            Some(acc) => acc.add_assign(&g),
            None => *slot = Some(g),
        }
    }

    /// Back-propagate from this scalar: fill `.grad()` of every leaf that requires it.
    /// As PyTorch, the graph's saved state is freed on the way; a second call errors.
    pub fn backward(&self) -> Result<()> {
        autograd::backward(self, None)
    }

    /// Back-propagate with an explicit upstream gradient of this tensor's shape.
    pub fn backward_with(&self, grad: &Tensor) -> Result<()> {
        if grad.shape() != self.shape() {
            return Err(Error::shape("gradient", self.shape(), grad.shape()));
        }
        autograd::backward(self, Some(grad.storage().read().clone()))
    }

    // ----- in-place updates (leaves only) -------------------------------------------------

    /// Update the values in place (what optimisers do to parameters). Refused for non-leaf
    /// tensors, whose values the graph may still need.
    pub fn update_data<R>(&self, f: impl FnOnce(&mut [f32]) -> R) -> Result<R> {
        if !self.is_leaf() {
            return Err(Error::Autograd(
                "a view of a leaf Variable that requires grad is being used in an in-place operation".into(),
            ));
        }
        let mut s = self.0.storage.write();
        Ok(f(s.as_mut_slice()))
    }

    /// Copy values from `src` (same number of elements) into this leaf.
    pub fn copy_from(&self, src: &[f32]) -> Result<()> {
        if src.len() != self.numel() {
            return Err(Error::shape("source", self.shape(), &[src.len()]));
        }
        self.update_data(|d| d.copy_from_slice(src))
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.data();
        let show: Vec<f32> = d.iter().take(8).copied().collect();
        write!(
            f,
            "Tensor(shape={:?}, data={:?}{}",
            self.shape(),
            show,
            if d.len() > 8 { "..." } else { "" }
        )?;
        if let Some(n) = self.grad_fn_name() {
            write!(f, ", grad_fn={n}")?;
        } else if self.0.leaf_requires_grad {
            write!(f, ", requires_grad=True")?;
        }
        write!(f, ")")
    }
}
