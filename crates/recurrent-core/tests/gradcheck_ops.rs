//! Finite-difference checks of every op's backward through autograd. The recurrent kernels
//! have exact `f64` checks in `backend::cpu::gradcheck`; the ops here run in `f32`, so the
//! check uses central differences with a step of 1e-2 on a loss accumulated in `f64` (ops
//! below are at most quadratic near the test points, so the truncation error stays far below
//! the tolerance) and compares with a relative tolerance of 1e-2.

use recurrent_core::ops::rnn::{rnn_layer, DirectionParams, RnnMode};
use recurrent_core::rnn::{RnnDims, Steps};
use recurrent_core::{
    ClassTarget, CrossEntropyOptions, EmbeddingOptions, Generator, PoolMode, Reduction, Result,
    Tensor,
};

/// Compare autograd's gradient of `sum(f(inputs) ⊙ w)` for a fixed random `w` with central
/// differences, for every element of every input. Returns the number of elements checked.
fn gradcheck(name: &str, inputs: &[Tensor], f: &dyn Fn(&[Tensor]) -> Result<Tensor>) -> usize {
    let mut g = Generator::new(42);
    let leaves: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.deep_clone().requires_grad())
        .collect();
    let out = f(&leaves).unwrap();
    let w: Vec<f32> = (0..out.numel())
        .map(|_| g.uniform_range(-1.0, 1.0))
        .collect();
    let wt = Tensor::from_vec(w.clone(), out.shape()).unwrap();
    out.mul(&wt).unwrap().sum().unwrap().backward().unwrap();
    let loss = |ts: &[Tensor]| -> f64 {
        let _ng = recurrent_core::no_grad();
        let o = f(ts).unwrap();
        o.to_vec()
            .iter()
            .zip(&w)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum()
    };
    let eps = 1e-2f32;
    let mut checked = 0;
    for (k, leaf) in leaves.iter().enumerate() {
        let analytic = leaf
            .grad()
            .map(|t| t.to_vec())
            .unwrap_or_else(|| vec![0.0; leaf.numel()]);
        let base = inputs[k].to_vec();
        for i in 0..base.len() {
            let shifted = |d: f32| {
                let mut v = base.clone();
                v[i] += d;
                let mut ts: Vec<Tensor> = inputs.to_vec();
                ts[k] = Tensor::from_vec(v, inputs[k].shape()).unwrap();
                loss(&ts)
            };
            let numeric = (shifted(eps) - shifted(-eps)) / (2.0 * eps as f64);
            let a = analytic[i] as f64;
            let err = (numeric - a).abs() / (1e-2 + numeric.abs().max(a.abs()));
            assert!(
                err < 1e-2,
                "{name}: input {k}[{i}]: analytic {a}, numeric {numeric}"
            );
            checked += 1;
        }
    }
    checked
}

fn rand(shape: &[usize], seed: u64) -> Tensor {
    Tensor::rand_uniform(shape, -1.0, 1.0, &mut Generator::new(seed)).unwrap()
}

#[test]
fn elementwise_and_reductions() {
    let mut n = 0;
    let (a, b, c) = (rand(&[2, 3], 1), rand(&[3], 2), rand(&[2, 1], 3));
    n += gradcheck(
        "add/mul broadcast",
        &[a.clone(), b.clone(), c.clone()],
        &|t| t[0].add(&t[1])?.mul(&t[2]),
    );
    n += gradcheck("sub/div", &[a.clone(), b.add_scalar(3.0).unwrap()], &|t| {
        t[0].sub(&t[1])?.div(&t[1])
    });
    n += gradcheck("tanh sigmoid exp", std::slice::from_ref(&a), &|t| {
        t[0].tanh()?.add(&t[0].sigmoid()?)?.add(&t[0].exp()?)
    });
    n += gradcheck("log sqrt powf", &[a.add_scalar(2.0).unwrap()], &|t| {
        t[0].log()?.add(&t[0].sqrt()?)?.add(&t[0].powf(1.5)?)
    });
    n += gradcheck("relu", &[rand(&[7], 9)], &|t| t[0].relu());
    n += gradcheck("sum_dim mean_dim", &[rand(&[2, 3, 4], 4)], &|t| {
        t[0].sum_dim(1, false)?.add(&t[0].mean_dim(1, false)?)
    });
    n += gradcheck("max_dim", &[rand(&[3, 5], 5)], &|t| {
        Ok(t[0].max_dim(1, true)?.0)
    });
    n += gradcheck("softmax", &[rand(&[2, 4], 6)], &|t| t[0].softmax(1));
    n += gradcheck("log_softmax", &[rand(&[2, 3, 4], 7)], &|t| {
        t[0].log_softmax(1)
    });
    eprintln!("elementwise/reduction elements checked: {n}");
}

#[test]
fn shapes_products_and_lookups() {
    let mut n = 0;
    let x = rand(&[2, 3, 4], 1);
    n += gradcheck("permute", std::slice::from_ref(&x), &|t| {
        t[0].permute(&[2, 0, 1])
    });
    n += gradcheck("narrow+cat", std::slice::from_ref(&x), &|t| {
        Tensor::cat(&[t[0].narrow(2, 1, 2)?, t[0].clone()], 2)
    });
    n += gradcheck("index_select", std::slice::from_ref(&x), &|t| {
        t[0].index_select(1, &[2, 0, 2])
    });
    n += gradcheck("stack", &[rand(&[3], 2), rand(&[3], 3)], &|t| {
        Tensor::stack(t, 1)
    });
    n += gradcheck(
        "linear",
        &[rand(&[4, 3], 4), rand(&[2, 3], 5), rand(&[2], 6)],
        &|t| t[0].linear(&t[1], Some(&t[2])),
    );
    n += gradcheck(
        "matmul nd",
        &[rand(&[2, 3, 4], 7), rand(&[4, 2], 8)],
        &|t| t[0].matmul(&t[1]),
    );
    n += gradcheck("bmm", &[rand(&[2, 3, 4], 9), rand(&[2, 4, 2], 10)], &|t| {
        t[0].matmul(&t[1])
    });
    // (The padding row deliberately gets no gradient, so the check runs without padding_idx.)
    let opts = EmbeddingOptions {
        scale_grad_by_freq: false,
        ..Default::default()
    };
    n += gradcheck("embedding", &[rand(&[4, 3], 11)], &|t| {
        t[0].embedding(&[0, 1, 3, 0], &[2, 2], opts)
    });
    n += gradcheck("mul_mask", &[rand(&[5], 12)], &|t| {
        t[0].mul_mask(&Tensor::from_vec(vec![0.0, 2.0, 2.0, 0.0, 2.0], &[5])?)
    });
    // Packed pooling; values chosen so no maximum is within a finite-difference step of another.
    let packed = Tensor::from_vec(
        vec![
            0.1, 0.9, 0.5, -0.3, 0.7, 0.2, -0.8, 0.4, 0.3, -0.6, 0.95, 0.15,
        ],
        &[6, 2],
    )
    .unwrap();
    n += gradcheck("packed pool", &[packed], &|t| {
        t[0].packed_pool(&[3, 2, 1], PoolMode::Max)?
            .add(&t[0].packed_pool(&[3, 2, 1], PoolMode::Mean)?)
    });
    eprintln!("shape/product elements checked: {n}");
}

#[test]
fn losses() {
    let mut n = 0;
    let y = Tensor::from_vec(vec![1., 0., 1., 0., 0., 1.], &[2, 3]).unwrap();
    let pw = Tensor::from_vec(vec![2.0, 0.5, 1.0], &[3]).unwrap();
    n += gradcheck("bce", &[rand(&[2, 3], 1)], &|t| {
        t[0].binary_cross_entropy_with_logits(&y, None, Some(&pw), Reduction::Mean)
    });
    let w = Tensor::from_vec(vec![1.0, 2.0, 0.5], &[3]).unwrap();
    let opts = CrossEntropyOptions {
        weight: Some(&w),
        label_smoothing: 0.1,
        ..Default::default()
    };
    n += gradcheck("ce", &[rand(&[4, 3], 2)], &|t| {
        t[0].cross_entropy(ClassTarget::Indices(&[0, 2, -100, 1]), opts)
    });
    n += gradcheck("ce none", &[rand(&[2, 3, 2], 3)], &|t| {
        t[0].cross_entropy(
            ClassTarget::Indices(&[0, 2, 1, 1]),
            CrossEntropyOptions {
                reduction: Reduction::None,
                ..Default::default()
            },
        )
    });
    n += gradcheck("mse", &[rand(&[3, 2], 4), rand(&[3, 2], 5)], &|t| {
        t[0].mse_loss(&t[1], Reduction::Sum)
    });
    eprintln!("loss elements checked: {n}");
}

#[test]
fn recurrent_layer_through_autograd() {
    // The fused op end to end (both directions, packed, projection), in f32.
    let steps = Steps::new(&[3, 2, 1]).unwrap();
    let dims = RnnDims {
        input_size: 2,
        hidden_size: 3,
        proj_size: 2,
    };
    let p = 2;
    let inputs = vec![
        rand(&[6, 2], 1),
        rand(&[2, 3, p], 2),
        rand(&[2, 3, 3], 3),
        rand(&[12, 2], 4),
        rand(&[12, p], 5),
        rand(&[12], 6),
        rand(&[12], 7),
        rand(&[p, 3], 8),
        rand(&[12, 2], 9),
        rand(&[12, p], 10),
        rand(&[12], 11),
        rand(&[12], 12),
        rand(&[p, 3], 13),
    ];
    let n = gradcheck("lstm layer", &inputs, &|t| {
        let dirs = [
            DirectionParams {
                w_ih: &t[3],
                w_hh: &t[4],
                b_ih: Some(&t[5]),
                b_hh: Some(&t[6]),
                w_hr: Some(&t[7]),
                h_mask: None,
            },
            DirectionParams {
                w_ih: &t[8],
                w_hh: &t[9],
                b_ih: Some(&t[10]),
                b_hh: Some(&t[11]),
                w_hr: Some(&t[12]),
                h_mask: None,
            },
        ];
        let r = rnn_layer(
            RnnMode::Lstm,
            &t[0],
            &steps,
            &t[1],
            Some(&t[2]),
            &dirs,
            dims,
        )?;
        Tensor::cat(
            &[
                r.output.reshape(&[24])?,
                r.h_n.reshape(&[12])?,
                r.c_n.unwrap().reshape(&[18])?,
            ],
            0,
        )
    });
    assert_eq!(n, 198);
}
