// Deliberate mistakes: tsc --strict must report an error on each line marked
// "expect-error" (the test checks every one, and nothing else).
import type { components } from './api';

type S = components['schemas'];

export const quantityAsString: S['OrderRequest'] = {
  product_name: 'Blue mug',
  quantity: '2', // expect-error: a string quantity
  price: '12.50',
};
export const noProduct: S['OrderRequest'] = { quantity: 2, price: '12.50' }; // expect-error: no product_name
export const unknownRole: S['RegisterRequest'] = {
  username: 'alice', email: 'alice@example.com', password: 'x', password2: 'x',
  role: 'admin', // expect-error: an unknown role
};
export const studentAsText: S['PatchedUserProfileRequest'] = {
  is_student: 'yes', // expect-error: is_student is a boolean
};
export const misspeltStatus: S['OrderStatusRequest'] = {
  status: 'canceled', // expect-error: a misspelt status
};
